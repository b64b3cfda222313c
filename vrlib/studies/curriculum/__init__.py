"""Study 04 — Frozen in Time (Bain et al. 2021): joint image + video training, frame curriculum,
temporal-embedding expansion, accuracy against compute.

The data flows one way through the package:

- ``params``: the parameter model and its checks;
- ``data``: the decoded clips and images, and which test videos show what training held out;
- ``runs``: the settings, decoding, training every (setting, seed), step 0, the tables;
- ``claims``: each claim decided by a paired cluster bootstrap, and the reading.
"""
