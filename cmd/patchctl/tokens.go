package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
)

func newTokensCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Create, list and revoke the controller's admin API tokens",
		Long: `tokens manages the tokens of patchd's admin API. A token holds one or more
scopes: read (status, state export, audit log, compliance report, endpoint
list), backup (download backups) and admin (everything, including tokens
and endpoints). A read token may be limited to some clients with --client:
it then sees only their endpoints, status and audit entries. Managing
tokens needs the admin scope (or the secrets file's adminToken).

The controller keeps only a hash of each token; its secret is shown once,
when it is created.`,
	}
	cmd.AddCommand(newTokensCreateCmd(), newTokensListCmd(), newTokensRevokeCmd())
	return cmd
}

func newTokensCreateCmd() *cobra.Command {
	var (
		cf      controllerFlags
		scopes  []string
		clients []string
		out     string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --scope read|backup|admin [--client ID]... [--out FILE]",
		Short: "Create a token and show its secret once",
		Long: `create makes a token named NAME (lowercase letters, digits, '.', '_', '-')
with the scopes given (--scope, repeated or comma-separated) and, for a
read token, limited to the clients given (--client, repeated).

The secret is printed alone on standard output, or written to FILE with
--out (readable by its owner only); the controller does not keep it and
never shows it again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(scopes) == 0 {
				return errors.New("--scope is required: read, backup or admin")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			req := protocol.TokenRequest{Name: args[0], Clients: clients}
			for _, s := range scopes {
				req.Scopes = append(req.Scopes, protocol.Scope(s))
			}
			created, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			summary := fmt.Sprintf("token %s created: %s", textsafe.Terminal(created.Token.Name), tokenRights(created.Token))
			if out == "" {
				fmt.Fprintln(cmd.OutOrStdout(), created.Secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "%s; its secret is above, shown only this once\n", summary)
				return nil
			}
			// The secret is a credential: only its owner reads the file.
			if err := writeSecret(out, created.Secret); err != nil {
				return fmt.Errorf("--out %s: %w (the token is created; revoke it and create another)", out, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s; its secret is in %s\n", summary, out)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringSliceVar(&scopes, "scope", nil, "`scope` the token holds: read, backup or admin (repeat for several)")
	cmd.Flags().StringSliceVar(&clients, "client", nil, "client `ID` a read token is limited to (repeat for several; default every client)")
	cmd.Flags().StringVar(&out, "out", "", "`FILE` to write the secret to (mode 0600) instead of standard output")
	return cmd
}

func newTokensListCmd() *cobra.Command {
	var (
		cf     controllerFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tokens, revoked ones too (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("unknown format %q: want text or json", format)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			tokens, err := c.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(protocol.TokenList{Tokens: tokens})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPES\tCLIENTS\tCREATED\tBY\tLAST USED\tREVOKED")
			for _, t := range tokens {
				scopes := make([]string, len(t.Scopes))
				for i, s := range t.Scopes {
					scopes[i] = string(s)
				}
				clients := "all"
				if len(t.Clients) > 0 {
					clients = strings.Join(t.Clients, ",")
				}
				revoked := "-"
				if !t.RevokedAt.IsZero() {
					revoked = listTime(t.RevokedAt) + " by " + t.RevokedBy
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", textsafe.Terminal(t.Name), textsafe.Terminal(strings.Join(scopes, ",")),
					textsafe.Terminal(clients), listTime(t.CreatedAt), textsafe.Terminal(t.CreatedBy), listTime(t.LastUsed), textsafe.Terminal(revoked))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func newTokensRevokeCmd() *cobra.Command {
	var cf controllerFlags
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: the controller refuses it from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked at %s; it is refused from now on\n", textsafe.Terminal(t.Name), listTime(t.RevokedAt))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

// tokenRights says what a token may do: "scopes read; clients acme, globex".
func tokenRights(t protocol.Token) string {
	scopes := make([]string, len(t.Scopes))
	for i, s := range t.Scopes {
		scopes[i] = string(s)
	}
	clients := "every client"
	if len(t.Clients) > 0 {
		clients = "clients " + strings.Join(t.Clients, ", ")
	}
	return textsafe.Terminal("scopes " + strings.Join(scopes, ", ") + "; " + clients)
}

// listTime shows a time of a token or an endpoint in a list, to the
// minute in UTC; "-" for none.
func listTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
