"""The run folder on disk: writes that never follow a link and never leave half a file,
the record of which files seqlm wrote (what ``--force`` may replace), and the folder's
lock."""
