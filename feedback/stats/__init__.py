"""The mathematics of releases, in one place: what a release counts (``cells``), how a plan
spends the yearly budget (``periods``, ``budget``, ``plans``, ``advisor``), and how released
noisy numbers are read (``shares``, ``means``): post-processing of stored releases that any
reader may do, and planning that reads nothing of survivors. The worker's noise and exact
tallies are in ``feedback.aggregate``; the survivor side never imports this package.
"""
