"""Study 03 — learning text-to-video retrieval from frame captions (Ventura et al. 2024).

The data flows one way through the package:

- ``captioner_spec``: one captioner as a parameter file names it;
- ``study``: the parameter model, the runs (rules x captioners, upper bounds), the guard against
  ground truth in training and the paper's claims (what is asked);
- ``runs``: caption labels of the training videos, features, per-epoch pairs, training, tests;
- ``report``: metrics rows, Figure 2's frames, captioner quality, shot coverage, the claims over
  test videos and seeds, and the reading.
"""
