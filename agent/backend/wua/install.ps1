# Installs the updates named in $env:PATCHLINE_UPDATES (comma-separated KB
# ids or update GUIDs), one at a time and in that order, and prints one JSON
# result per update for Patchline's windows-update backend.
$session = New-Object -ComObject Microsoft.Update.Session
$session.ClientApplicationID = 'Patchline'
$searcher = $session.CreateUpdateSearcher()
$available = @($searcher.Search("IsInstalled=0 and Type='Software'").Updates)
$installed = $null
function Find-Update($list, $id) {
  foreach ($u in $list) {
    if ([string]$u.Identity.UpdateID -eq $id) { return $u }
    foreach ($kb in $u.KBArticleIDs) { if ("KB$kb" -eq $id) { return $u } }
  }
  return $null
}
$results = New-Object System.Collections.Generic.List[object]
foreach ($id in ($env:PATCHLINE_UPDATES -split ',')) {
  $r = [ordered]@{ id = $id; status = ''; resultCode = 0; hresult = 0; rebootRequired = $false; error = '' }
  try {
    $u = Find-Update $available $id
    if ($null -eq $u) {
      if ($null -eq $installed) { $installed = @($searcher.Search("IsInstalled=1 and Type='Software'").Updates) }
      if ($null -ne (Find-Update $installed $id)) { $r.status = 'alreadyInstalled' } else { $r.status = 'notFound' }
    } else {
      if (-not $u.EulaAccepted) { $u.AcceptEula() }
      $coll = New-Object -ComObject Microsoft.Update.UpdateColl
      [void]$coll.Add($u)
      $downloader = $session.CreateUpdateDownloader()
      $downloader.Updates = $coll
      [void]$downloader.Download()
      $installer = $session.CreateUpdateInstaller()
      $installer.Updates = $coll
      $res = $installer.Install().GetUpdateResult(0)
      $r.status = 'attempted'
      $r.resultCode = [int]$res.ResultCode
      $r.hresult = [int]$res.HResult
      $r.rebootRequired = [bool]$res.RebootRequired
    }
  } catch {
    $r.status = 'error'
    $r.error = $_.Exception.Message
  }
  $results.Add($r)
}
ConvertTo-Json -InputObject @($results) -Depth 3 -Compress
