# Lists Windows Update's software updates, not yet installed (and not hidden)
# and installed, as one JSON array for Patchline's windows-update backend.
$session = New-Object -ComObject Microsoft.Update.Session
$session.ClientApplicationID = 'Patchline'
$searcher = $session.CreateUpdateSearcher()
$list = New-Object System.Collections.Generic.List[object]
foreach ($criteria in @("IsInstalled=0 and IsHidden=0 and Type='Software'", "IsInstalled=1 and Type='Software'")) {
  $found = $searcher.Search($criteria)
  foreach ($u in $found.Updates) {
    $list.Add([ordered]@{
      updateId       = [string]$u.Identity.UpdateID
      revision       = [int]$u.Identity.RevisionNumber
      title          = [string]$u.Title
      kbs            = @($u.KBArticleIDs | ForEach-Object { "KB$_" })
      msrcSeverity   = [string]$u.MsrcSeverity
      categories     = @($u.Categories | ForEach-Object { [string]$_.Name })
      cves           = @($u.CveIDs | ForEach-Object { [string]$_ })
      released       = $u.LastDeploymentChangeTime.ToUniversalTime().ToString('o')
      rebootBehavior = [int]$u.InstallationBehavior.RebootBehavior
      installed      = [bool]$u.IsInstalled
    })
  }
}
ConvertTo-Json -InputObject @($list) -Depth 4 -Compress
