"""Study 02 — does modelling time help? (CLIP2Video, Fang et al. 2021), one module per step.

The data flows one way through the package:

- ``study``: the parameter model, the settings of Tables 1-2 and their claims (what is asked);
- ``runs``: each split's features (or pixels), then every setting with every seed (the engine);
- ``twins``: the reversed-twin instrument (each test video's frames forward and reversed);
- ``probes``: where an order signal is lost (text and frame direction probes, the probe gate);
- ``reading``: the words computed from the tables.
"""
