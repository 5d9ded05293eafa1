"""Dialog widgets (imported only by the Processing dialogs, never under qgis_process).

QGIS 3.22's number widget steps integers by 1 and takes no step from the parameter's metadata,
so TILE_SIZE and OVERLAP would accept 513 as readily as 512. This wrapper gives them a spin box
that steps by the model's downsampling factor (16), within the parameter's minimum and maximum;
a typed value that is not a multiple is rounded to the nearest one when the box loses focus.
In the graphical modeler the standard model-input panel is used.
"""

from __future__ import annotations

from processing.gui.wrappers import DIALOG_MODELER, WidgetWrapper
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
        snapped = min(max(round(value / self._step) * self._step, self.minimum()), self.maximum())
        if snapped != value:
            self.setValue(snapped)


class StepSpinBoxWrapper(WidgetWrapper):
    """Integer spin box with a step (metadata ``{"widget_wrapper": {"class": ..., "step": 16}}``)."""

    def createWidget(self, step: int = 1, **kwargs):
        param = self.parameterDefinition()
        if self.dialogType == DIALOG_MODELER:
            from processing.gui.NumberInputPanel import ModelerNumberInputPanel

            return ModelerNumberInputPanel(param, self.dialog)
        box = _StepSpinBox(int(step))
        box.setMinimum(int(param.minimum()))
        box.setMaximum(int(param.maximum()))
        if param.defaultValue() is not None:
            box.setClearValue(int(param.defaultValue()))
        box.valueChanged.connect(lambda _value: self.widgetValueHasChanged.emit(self))
        return box

    def setValue(self, value):
        if value is None:
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
        return self.widget.value()
