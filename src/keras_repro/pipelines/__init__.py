"""Input pipelines: how a dataset's arrays reach the model, one module each, with the same
functions ``make_pipelines(arrays, batch_size, preprocess) -> (train, test)`` (the training
pipeline reshuffles every epoch; the test pipeline is in order), ``steps(pipeline)`` and
``batch_shape(pipeline)`` (the input batches' shape, batch axis None).

``tfdata`` is the recipe's (it needs TensorFlow, on any Keras backend). ``load_pipeline`` is the
one place that picks one; their frameworks are imported only when picked.
"""

from __future__ import annotations

from types import ModuleType

PIPELINES = ("tfdata",)


def load_pipeline(name: str) -> ModuleType:
    if name == "tfdata":
        from keras_repro.pipelines import tfdata

        return tfdata
    raise ValueError(f"unknown input pipeline {name!r}; known: {', '.join(PIPELINES)}")
