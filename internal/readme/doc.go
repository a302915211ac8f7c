// Package readme holds the test that keeps README.md true. Every fenced
// block of the README says its language, and the language says how the
// block is checked:
//
//   - cue: a client's policy file, vetted with the loader as client acme
//     of a repository made by patchctl init and of the example fleet
//     (examples/fleet): it must load without an error or a warning.
//   - sh, bash: commands. Every patchctl, patchd and patch-agent command
//     in them must name a real command with real flags, each flag that
//     takes a value given one (checked against each tool's own help),
//     and patchd's --data-dir and patch-agent's --state-dir the ones the
//     systemd units in examples/systemd use. A word "..." stands for
//     flags left out. Commands that need nothing
//     outside the test (patch-agent inventory --backend sim) run for
//     real.
//     Variables set before a command (PATCHLINE_STATE_DIR=... patch-agent
//     run) must name flags of it.
//   - yaml: a config file, whose first line names it
//     (# /etc/patchline/patchd.yaml, # /etc/patch-agent/agent.yaml): it
//     must parse as patchd and patch-agent read it (internal/cliconf),
//     every key must be a flag of patchd serve or patch-agent run, and
//     the directories must be the systemd units'.
//   - console: commands after "$ ", each followed by what it prints.
//     They run for real in the example fleet repository (examples/fleet
//     on main, and on a branch the change cmd/patchctl's TestPlanBase
//     makes), and what the README shows must be what they print: line by
//     line, with runs of spaces as one and commit hashes as any, a line
//     holding "..." matching a line that starts and ends as it does, and
//     a line of "..." alone standing for lines left out.
//   - text, json and any other language: output or data, not checked
//     here.
//
// A block without a language fails the test, so every new block says
// which rule it follows. It holds only tests.
package readme
