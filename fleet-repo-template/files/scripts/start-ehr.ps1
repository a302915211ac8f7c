# Runs after a job's installs (hooks.post): start the EHR service again.
Start-Service -Name 'EHRServer' -ErrorAction Stop
