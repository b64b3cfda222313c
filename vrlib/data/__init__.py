"""Data: the embedded world, dataset readers, frame sampling and video decoding.

Place in the data flow: the first layer, importing nothing else of vrlib but ``vrlib.io`` and
``vrlib.registry``; ``encoders``, ``features`` and everything above read data through it.

- :mod:`vrlib.data.synthetic` generates the embedded world (``ensure_world``, ``generate_world``);
- :mod:`vrlib.data.datasets` reads a world or a benchmark into a ``RetrievalDataset``
  (``load_dataset``, ``DATASETS``);
- :mod:`vrlib.data.sampling` picks which frame indices to decode (``frame_indices``,
  ``SamplingConfig``, ``SAMPLERS``);
- :mod:`vrlib.data.video` decodes them (``probe``, ``read_frames``, ``read_sampled``).

This package itself exports no names: import from the subpackage, so that generating a world
does not import torch and reading annotations does not import a video decoder.
"""
