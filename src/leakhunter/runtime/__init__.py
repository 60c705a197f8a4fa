"""What every command stands on, knowing nothing of leaks: writing files whole or not at all
(:mod:`.safe_write`), one writer per folder (:mod:`.locks`), Ctrl-C and SIGTERM at safe
points (:mod:`.signals`), worker processes (:mod:`.parallel`), logging and progress bars
(:mod:`.log`), which device and precision (:mod:`.devices`, the ``auto`` policy in
:mod:`.device_policy`, :mod:`.amp`), and figures drawn for files (:mod:`.figures`)."""
