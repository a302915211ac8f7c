package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Keep the fleet repository's copy of the Patchline schema current",
		Long: `A fleet repository made by patchctl init holds a copy of the Patchline
schema as the CUE package ` + schema.PackagePath + ` (` + schema.PackageFile + `),
which its root files import, so that the cue command (cue vet -c ./...,
cue eval ./clients/<id>) and editors (cue lsp) check every client as
patchctl vet does. patchctl and patchd never read the copy: they use the
schema they were built with, and patchctl vet warns while the copy differs.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSchemaUpdateCmd())
	return cmd
}

func newSchemaUpdateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "update [DIR]",
		Short: "Write this patchctl's schema into the fleet repository in DIR",
		Long: `update writes this patchctl's schema into the fleet repository in DIR
(default: the current directory; any directory inside the repository will
do) as ` + schema.PackageFile + `, removes any
other file of that package, and raises the CUE language version in
cue.mod/module.cue to ` + schema.MinLanguageVersion + ` when it is older (the schema needs it).
Run it after upgrading Patchline, then commit the change.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			dir = fleetTop(dir)
			up, err := loader.WriteSchema(dir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, f := range up.Removed {
				fmt.Fprintf(out, "removed %s\n", f)
			}
			if !slices.Contains(up.Written, schema.PackageFile) {
				fmt.Fprintf(out, "%s is up to date (%s)\n", schema.PackageFile, schema.Digest())
			} else {
				fmt.Fprintf(out, "wrote %s (%s)\n", schema.PackageFile, schema.Digest())
			}
			if up.LanguageVersion != "" {
				fmt.Fprintf(out, "raised the language version in %s from %s to %s\n", schema.ModuleFile, up.LanguageVersion, schema.MinLanguageVersion)
			}
			if !up.Imported {
				fmt.Fprintf(out, "No fleet file imports the schema yet: for cue vet and editors to check every client with it, add to fleet.cue, after its package clause:\n\n\timport %q\n\n\tschema.#Fleet\n", schema.PackagePath)
			}
			if len(up.Written)+len(up.Removed) > 0 {
				fmt.Fprintln(out, "Commit the change.")
			}
			return nil
		},
	}
}
