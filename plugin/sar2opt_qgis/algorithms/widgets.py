"""Dialog widgets (imported only by the Processing dialogs, never under qgis_process).

QGIS 3.22's number widget steps integers by 1 and takes no step from the parameter's metadata,
so TILE_SIZE and OVERLAP would accept 513 as readily as 512. This wrapper gives them a spin box
that steps by the model's downsampling factor (16), within the parameter's minimum and maximum;
a typed value that is not a multiple is rounded to the nearest one when the box loses focus.
An optional parameter without a default gets one more position below its minimum, shown as
"automatic" (also what the box's clear button gives): there the wrapper's value is None, so
nothing is sent and the library's planner chooses, exactly as the CLI without the flag.
In the graphical modeler the standard model-input panel is used.
"""

from __future__ import annotations

from processing.gui.wrappers import DIALOG_MODELER, WidgetWrapper
from qgis.core import QgsProcessingParameterDefinition
from qgis.gui import QgsSpinBox

__all__ = ["StepSpinBoxWrapper"]


class _StepSpinBox(QgsSpinBox):
    def __init__(self, step: int):
        super().__init__()
        self._step = step
        self.setSingleStep(step)
        self.editingFinished.connect(self._snap)

    def _snap(self) -> None:
        value = self.value()
        if self.specialValueText() and value == self.minimum():  # "automatic"
            return
        snapped = min(max(round(value / self._step) * self._step, self.minimum()), self.maximum())
        if snapped != value:
            self.setValue(snapped)


class StepSpinBoxWrapper(WidgetWrapper):
    """Integer spin box with a step (metadata ``{"widget_wrapper": {"class": ..., "step": 16}}``)."""

    _automatic: int | None = None  # the box position that means "not set" (optional parameters without a default)

    def createWidget(self, step: int = 1, **kwargs):
        param = self.parameterDefinition()
        if self.dialogType == DIALOG_MODELER:
            from processing.gui.NumberInputPanel import ModelerNumberInputPanel

            return ModelerNumberInputPanel(param, self.dialog)
        box = _StepSpinBox(int(step))
        if param.defaultValue() is None and param.flags() & QgsProcessingParameterDefinition.FlagOptional:
            self._automatic = int(param.minimum()) - int(step)  # one step below the smallest real value
            box.setMinimum(self._automatic)
            box.setSpecialValueText(self.tr("automatic"))
            box.setClearValue(self._automatic)
            box.setValue(self._automatic)
        else:
            box.setMinimum(int(param.minimum()))
        box.setMaximum(int(param.maximum()))
        if param.defaultValue() is not None:
            box.setClearValue(int(param.defaultValue()))
        box.valueChanged.connect(lambda _value: self.widgetValueHasChanged.emit(self))
        return box

    def setValue(self, value):
        if value is None or value == "":
            if self.dialogType != DIALOG_MODELER and self._automatic is not None:
                self.widget.setValue(self._automatic)
            return
        if self.dialogType == DIALOG_MODELER:
            self.widget.setValue(value)
            return
        try:
            self.widget.setValue(int(value))
        except (TypeError, ValueError):
            pass

    def value(self):
        if self.dialogType == DIALOG_MODELER:
            return self.widget.getValue()
        value = self.widget.value()
        return None if value == self._automatic else value
