"""``sar2opt:train``: a pairs folder -> a fine-tuned (or new) generator checkpoint, as a background task."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import DEVICES, Sar2OptAlgorithm

__all__ = ["TrainAlgorithm"]


class TrainAlgorithm(Sar2OptAlgorithm):
    """Declares the parameters and turns them into one ``sar2opt train`` call."""

    PAIRS = "PAIRS"
    INIT = "INIT"
    EPOCHS = "EPOCHS"
    BATCH_SIZE = "BATCH_SIZE"
    CROP_SIZE = "CROP_SIZE"
    MAX_MINUTES = "MAX_MINUTES"
    RESUME = "RESUME"
    RUN_FOLDER = "RUN_FOLDER"

    _group = ("training", "Training")
    _summary = "Fine-tune (or train) a generator on a pairs folder; the checkpoint works in sar2opt:translate."

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:
        return self.tr("Train a generator on training pairs")

    def tags(self) -> list[str]:
        return ["training", "fine-tune", "pix2pix", "generator", "checkpoint", "pairs"]

    def shortHelpString(self) -> str:
        return self.tr(
            "Trains the article's pix2pix generator on a folder made by 'Make training pairs' (sar2opt:makepairs) "
            "and writes the best validation checkpoint to OUTPUT (.safetensors with its model card), ready for "
            "the MODEL parameter of sar2opt:translate.\n\n"
            "INIT: fine-tune from a checkpoint, or 'sar' / 'gray' for the bundled models (default sar); empty "
            "trains from scratch. The card records the parent (name, hash) and the pairs' input domain (sensor, "
            "band, frequency band, pixel spacing), so translate configures itself from it.\n"
            "EPOCHS, BATCH_SIZE (crops per step) and CROP_SIZE (pixels, multiple of 16, at most the pairs' tile "
            "size) set the run; MAX_MINUTES stops it at a wall-clock budget. Validation holds out the eastern "
            "tiles of every scene pair (an area split); each epoch's metrics go to the log beside the "
            "constant-colour baseline.\n"
            "CRS: the pairs keep the SAR scene's grid; training does not change any georeferencing.\n"
            "Runs as a background task with progress; cancel stops it and keeps RUN_FOLDER (logs, checkpoints), "
            "so RESUME continues from the last finished epoch."
        )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterFile(
            self.PAIRS, self.tr("Pairs folder (from Make training pairs)"), behavior=QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterString(
            self.INIT, self.tr("Start from (checkpoint path, 'sar' or 'gray'; empty = from scratch)"), defaultValue="sar",
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.EPOCHS, self.tr("Epochs"), type=QgsProcessingParameterNumber.Integer, defaultValue=5, minValue=1,
            maxValue=10000))
        self.addParameter(QgsProcessingParameterNumber(
            self.BATCH_SIZE, self.tr("Batch size (crops per step)"), type=QgsProcessingParameterNumber.Integer,
            defaultValue=8, minValue=1, maxValue=1024))
        self.addParameter(QgsProcessingParameterNumber(
            self.CROP_SIZE, self.tr("Crop size (pixels, multiple of 16)"), type=QgsProcessingParameterNumber.Integer,
            defaultValue=256, minValue=16, maxValue=4096))
        minutes = QgsProcessingParameterNumber(
            self.MAX_MINUTES, self.tr("Time budget (minutes; empty = none)"), type=QgsProcessingParameterNumber.Double,
            minValue=0.1, optional=True)
        self.addParameter(minutes)
        device = QgsProcessingParameterEnum(self.DEVICE, self.tr("Torch device"), options=list(DEVICES), defaultValue=0)
        device.setFlags(device.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(device)
        resume = QgsProcessingParameterBoolean(self.RESUME, self.tr("Resume the run in RUN_FOLDER"), defaultValue=False)
        resume.setFlags(resume.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(resume)
        self.addParameter(QgsProcessingParameterFolderDestination(self.RUN_FOLDER, self.tr("Run folder (logs, checkpoints)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, self.tr("Trained checkpoint"), fileFilter="Model checkpoints (*.safetensors)"))

    def processAlgorithm(self, parameters, context, feedback):
        pairs = self.parameterAsFile(parameters, self.PAIRS, context)
        if not pairs or not (Path(pairs) / "metadata.json").is_file():
            raise QgsProcessingException(self.tr(f"{pairs}: not a pairs folder (no metadata.json); make one with "
                                                 "'Make training pairs' (sar2opt:makepairs)"))
        run = self.parameterAsString(parameters, self.RUN_FOLDER, context)
        dst = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if Path(dst).suffix.lower() != ".safetensors":
            raise QgsProcessingException(self.tr(f"output {dst} must be a .safetensors checkpoint"))
        args = ["train", pairs, run,
                "--epochs", str(self.parameterAsInt(parameters, self.EPOCHS, context)),
                "--batch-size", str(self.parameterAsInt(parameters, self.BATCH_SIZE, context)),
                "--crop-size", str(self.parameterAsInt(parameters, self.CROP_SIZE, context)),
                "--device", DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                "--name", Path(dst).stem, "--export", dst]
        init = (self.parameterAsString(parameters, self.INIT, context) or "").strip()
        if init:
            args += ["--init", init]
        if parameters.get(self.MAX_MINUTES) not in (None, ""):
            args += ["--max-minutes", repr(self.parameterAsDouble(parameters, self.MAX_MINUTES, context))]
        if self.parameterAsBool(parameters, self.RESUME, context):
            args += ["--resume"]
        args += ["--progress", "json"]
        result = self.run_backend(args, feedback, files=[dst])  # a cancel keeps the run folder (RESUME)
        return {self.OUTPUT: dst if Path(dst).exists() else result.outputs.get("OUTPUT", dst), self.RUN_FOLDER: run}
