"""Monitoring in production: a reference profile per version, production windows compared with it,
and the history of windows that decides automatic rollback and when a champion is stable.

- ``policy``: the policy file's ``monitoring:`` section (thresholds, minimum rows, action, cool-down).
- ``profile``: the compact summary of the hold-out stored with each version when the gate evaluates it.
- ``drift``: population stability index, Kolmogorov-Smirnov, chi-square and Jensen-Shannon against a profile.
- ``window``: reading a production window (capture files or any table of the same shape) column by column.
- ``assess``: one window against the profile: data quality, drift, live performance, shadow agreement.
- ``history``: consecutive breaches, cool-down and the stable period, over the recorded windows.
"""
