"""Input pipelines: how a dataset's arrays reach the model, one module each, with the same
names:

- ``make_pipelines(arrays, batch_size, preprocess, seed) -> (train, test)``: the training
  pipeline reshuffles every epoch (from ``seed``, or the framework's global seed), the test
  pipeline is in order;
- ``steps(pipeline)``: batches per pass; ``batch_shape(pipeline)``: the input batches' shape
  (batch axis None);
- ``MAPS_PREPROCESSING``: whether it maps the model's ``preprocess`` over the batches (if not,
  the model does its preprocessing in its first layers);
- ``fit_callbacks(train, test)``: the Keras callbacks ``fit`` must be given for it;
- ``batch_fingerprints(train, test)``: the fingerprints of the batches it served, by pass
  ([batches, 2, 8] uint8, training then test), or None to use the step recorder's;
- ``swap_examples(train, step)``: a planted fault in the data fed (the numpy pipeline's);
- ``position(train)`` and ``fast_forward(train, epoch, position)``: what a checkpoint at an epoch's
  start saves of the training pipeline, and how a resumed run gets there;
  ``segment_batches(train, first_step, last_step)``, the batches a segment that starts or
  ends inside an epoch is fed (``RESUMES_MID_EPOCH`` here says where that is possible).

``tfdata`` is the recipe's (it needs TensorFlow, on any Keras backend); ``numpy`` needs none
(the same batches on every backend). ``load_pipeline`` is the one place that picks one; their
frameworks are imported only when picked.
"""

from __future__ import annotations

from types import ModuleType

PIPELINES = ("tfdata", "numpy")
# Whether a run resumes exactly from a checkpoint inside an epoch: NumPy's order of any epoch
# follows from the seed; tf.data's shuffle buffer is not saved, so it resumes at epochs' ends.
RESUMES_MID_EPOCH = {"tfdata": False, "numpy": True}


def load_pipeline(name: str) -> ModuleType:
    if name == "tfdata":
        from keras_repro.pipelines import tfdata

        return tfdata
    if name == "numpy":
        from keras_repro.pipelines import numpy

        return numpy
    raise ValueError(f"unknown input pipeline {name!r}; known: {', '.join(PIPELINES)}")
