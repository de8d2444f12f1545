"""``python -m devstack report``: a season's statistics (docs/seasons.md#report).

The conventions here, so that the command line and a season's end can name them without
loading the statistics libraries (scipy, arch, statsmodels take seconds to import, and
``python -m devstack run`` has no use for them).
"""

DEFAULT_REPS = 2000  # bootstrap resamples per interval and comparison (evidence's default)
