"""HR input pipelines: grain training batches and validation images.

The trainer uses `make_train_dataset`, `load_validation_set` and
`default_data_config`; `read_image` / `list_images` serve notebooks and tools.
"""
from sr_jax.data.image_io import list_images
from sr_jax.data.image_io import read_image
from sr_jax.data.pipeline import default_data_config
from sr_jax.data.pipeline import batch_keys
from sr_jax.data.pipeline import batch_spec
from sr_jax.data.pipeline import is_paired
from sr_jax.data.pipeline import load_paired_validation_set
from sr_jax.data.pipeline import load_validation_set
from sr_jax.data.pipeline import make_train_dataset
