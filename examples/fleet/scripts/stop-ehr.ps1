# Runs before a job's installs (hooks.pre): stop the practice's EHR
# service so its files are not in use. A non-zero exit skips the installs
# and reports the job as hook-failed.
Stop-Service -Name 'EHRServer' -ErrorAction Stop
