Start-Service EHR
