"""`leakhunter tune`: hyperparameter search with Optuna over real `train` runs.

:mod:`.space` declares what is searched, :mod:`.study` sets up the study and its storage,
:mod:`.trials` runs its trials one at a time, :mod:`.heartbeat` fails and retries the
trials of processes that died, :mod:`.cost` measures inference cost, :mod:`.outputs` and
:mod:`.plots` write what it leaves behind. Only :mod:`.study`, :mod:`.trials`,
:mod:`.heartbeat`, :mod:`.outputs` and :mod:`.plots` import optuna, so every other command
(and ``leakhunter tune --help``) works without it.
"""
