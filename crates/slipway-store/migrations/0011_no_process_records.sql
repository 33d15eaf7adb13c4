-- Process groups are no longer recorded: nothing is ever killed by a stored number.
DROP TABLE IF EXISTS sandbox_processes;
