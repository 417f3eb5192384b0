"""Evaluation harness: every system (baselines, teachers, the student, hosted endpoints) answers the same test
queries through the same code and is scored by the same metrics.

* :mod:`.config`: :class:`~.config.EvalConfig`, what to evaluate and how much of it (imports no torch).
* :mod:`.systems`: what systems share: queries, predictions, the :class:`~.systems.System` protocol and the
  :class:`~.systems.SystemContext` a system is built from.
* :mod:`.catalog`: the systems a config names (:data:`~.catalog.SYSTEMS`), backend systems among them.
* :mod:`.data`: split parts and ingest tables read from disk.
* :mod:`.protocol`: how one system is evaluated on one split strategy.
* :mod:`.report`: leaderboard, predictions, calibration rows and plots.
"""
