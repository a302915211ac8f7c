# Installs patch-agent on Windows from this archive: copies patch-agent.exe
# beside this script to %ProgramFiles%\Patchline and registers the Windows
# service with `patch-agent service install`, which takes the arguments
# given here. Run in an elevated PowerShell:
#   .\install.ps1 --controller https://patchd.msp.example:8420 --client acme ...
$ErrorActionPreference = 'Stop'
$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$principal = New-Object Security.Principal.WindowsPrincipal($identity)
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'install.ps1: run it in an elevated PowerShell (Run as administrator)'
}
$dir = Join-Path $env:ProgramFiles 'Patchline'
New-Item -ItemType Directory -Force -Path $dir | Out-Null
$exe = Join-Path $dir 'patch-agent.exe'
Copy-Item -Force -Path (Join-Path $PSScriptRoot 'patch-agent.exe') -Destination $exe
& $exe service install @args
exit $LASTEXITCODE
