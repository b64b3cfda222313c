"""Study 03 — learning text-to-video retrieval from frame captions (Ventura et al. 2024).

The data flows one way through the package:

- ``captioner_spec``: one captioner as a parameter file names it;
- ``study``: the parameter model, the runs (rules x captioners, upper bounds, both protocols)
  and the guard against ground truth in training (what is asked);
- ``claims``: the paper's comparisons over the runs a report holds;
- ``data``: the captioners, caption labels of the training videos, features, the test split and
  each run's candidate sets behind the guard (shared by both protocols);
- ``runs``: the cached protocol (the cheap ablation): per-epoch pairs, training, tests, and the
  zero-shot baseline;
- ``end_to_end``: the paper's protocol, both towers fine-tuned, its lr chosen on val;
- ``report``: metrics rows, Figure 2's frames, captioner quality, shot coverage, the claims over
  test videos and seeds, and the reading.
"""
