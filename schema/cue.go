package schema

import _ "embed" // for the schema's text

// CUE is the text of fleet.cue, the schema whose #Fleet every client of a
// fleet repository is unified with. Package schema/loader evaluates it;
// the Go types of this package are what it decodes into.
//
//go:embed fleet.cue
var CUE string

// ModuleFile is the file that marks the root of a fleet repository.
const ModuleFile = "cue.mod/module.cue"
