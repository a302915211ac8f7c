Stop-Service EHR
