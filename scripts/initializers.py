"""Snakemake adapter: draw the recipe's seeded initializers in this process."""

from keras_repro.files import write_json_atomic
from keras_repro.initializers import draw_initializers
from keras_repro.logs import configure_logging

configure_logging(snakemake.log[0])
write_json_atomic(draw_initializers(snakemake.params.global_seed), snakemake.output[0])
