package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
)

func newEnrollCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Create, list and revoke enrollment tokens for agents",
		Long: `enroll manages enrollment tokens: what a client's agents present, once,
to enroll with the controller. A token belongs to one client; it may
expire (--expires), enroll a limited number of endpoints (--uses) and
carry labels every endpoint it enrolls inherits (--labels), over the
labels its agent reports. Tokens work as soon as they are made and stop
as soon as they are revoked: patchd needs no restart. The client's
secret from patchd's secrets file, where there is one, keeps working.

The controller keeps only a hash of each token; its secret is shown once,
when it is created. Managing enrollment tokens needs the admin scope.`,
	}
	cmd.AddCommand(newEnrollCreateCmd(), newEnrollListCmd(), newEnrollRevokeCmd())
	return cmd
}

func newEnrollCreateCmd() *cobra.Command {
	var (
		cf      controllerFlags
		req     protocol.EnrollTokenRequest
		expires string
		out     string
	)
	cmd := &cobra.Command{
		Use:   "create --client ID [--name NAME] [--expires 7d] [--uses N] [--labels k=v,...] [--out FILE]",
		Short: "Create an enrollment token and show its secret once",
		Long: `create makes an enrollment token for the client --client. Its secret is
printed alone on standard output, or written to FILE with --out (readable
by its owner only); the controller does not keep it and never shows it
again. Give it to the client's agents:

  patch-agent run --client ID --enroll-token-file FILE

--expires takes days (7d), weeks (2w) or a duration (12h); --uses how many
endpoints the token enrolls (an agent retrying its own enrollment uses
nothing); --labels the labels every endpoint it enrolls gets. Without
--name, the token is named after the client and 6 hex digits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Client == "" {
				return fmt.Errorf("--client is required: the client whose agents enroll with the token")
			}
			if expires != "" {
				life, err := parseLifetime(expires)
				if err != nil {
					return fmt.Errorf("--expires %q: %w", expires, err)
				}
				req.ExpiresIn = life.String()
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			created, err := c.CreateEnrollToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			tok := created.Token
			if created.Warning != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", textsafe.Terminal(created.Warning))
			}
			summary := fmt.Sprintf("enrollment token %s (id %d) created for client %s: %s", textsafe.Terminal(tok.Name), tok.ID,
				textsafe.Terminal(tok.Client), enrollTokenLimits(tok))
			hint := "an agent enrolls with it: patch-agent run --client " + textsafe.Terminal(tok.Client) + " --enroll-token-file "
			if out == "" {
				fmt.Fprintln(cmd.OutOrStdout(), created.Secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "%s; its secret is above, shown only this once\n%sFILE\n", summary, hint)
				return nil
			}
			if err := writeSecret(out, created.Secret); err != nil {
				return fmt.Errorf("--out %s: %w (the token is created; revoke it with patchctl enroll revoke %s and create another)", out, err, tok.Name)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s; its secret is in %s\n%s%s\n", summary, out, hint, out)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&req.Client, "client", "", "client `ID` whose agents enroll with the token")
	cmd.Flags().StringVar(&req.Name, "name", "", "`NAME` of the token (lowercase letters, digits, '.', '_', '-'; default the client and 6 hex digits)")
	cmd.Flags().StringVar(&expires, "expires", "", "how long the token enrolls: days (7d), weeks (2w) or a duration (12h); default for ever")
	cmd.Flags().Int64Var(&req.MaxUses, "uses", 0, "how many endpoints the token enrolls (default no limit)")
	cmd.Flags().StringToStringVar(&req.Labels, "labels", nil, "labels every endpoint enrolled with the token gets, as `key=value,...` (they win over the agent's)")
	cmd.Flags().StringVar(&out, "out", "", "`FILE` to write the secret to (mode 0600) instead of standard output")
	return cmd
}

// writeSecret writes a secret to path, readable by its owner only.
func writeSecret(path, secret string) error {
	return atomicfile.WriteFile(path, []byte(secret+"\n"), 0o600)
}

// parseLifetime reads --expires: a number of days ("7d") or weeks
// ("2w"), or a Go duration ("12h", "90m").
func parseLifetime(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("give a positive whole number of days (7d) or weeks (2w), or a duration (12h)")
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("give days (7d), weeks (2w) or a positive duration (12h)")
	}
	return d, nil
}

func newEnrollListCmd() *cobra.Command {
	var (
		cf     controllerFlags
		client string
		format string
	)
	cmd := &cobra.Command{
		Use:   "list [--client ID] [-o json]",
		Short: "List the enrollment tokens, revoked ones too (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("-o %q: want text or json", format)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			tokens, err := c.EnrollTokens(cmd.Context(), client)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(protocol.EnrollTokenList{Tokens: tokens})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCLIENT\tSTATE\tUSES\tEXPIRES\tLABELS\tCREATED\tBY")
			for _, t := range tokens {
				uses := strconv.FormatInt(t.Uses, 10)
				if t.MaxUses > 0 {
					uses += "/" + strconv.FormatInt(t.MaxUses, 10)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, textsafe.Terminal(t.Name), textsafe.Terminal(t.Client),
					textsafe.Terminal(t.State), uses, listTime(t.ExpiresAt), textsafe.Terminal(labelList(t.Labels)),
					listTime(t.CreatedAt), textsafe.Terminal(t.CreatedBy))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&client, "client", "", "list only the tokens of client `ID`")
	cmd.Flags().StringVarP(&format, "output", "o", "text", "output format: text or json")
	return cmd
}

func newEnrollRevokeCmd() *cobra.Command {
	var cf controllerFlags
	cmd := &cobra.Command{
		Use:   "revoke ID|NAME",
		Short: "Revoke an enrollment token: it enrolls nothing from now on",
		Long: `revoke stops an enrollment token, given by its id or its name (see
patchctl enroll list), from enrolling endpoints. The endpoints it
enrolled stay enrolled; revoke one with patchctl endpoints revoke.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			t, err := c.RevokeEnrollToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrollment token %s (id %d) of client %s revoked at %s; it enrolls nothing from now on\n",
				textsafe.Terminal(t.Name), t.ID, textsafe.Terminal(t.Client), listTime(t.RevokedAt))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

// enrollTokenLimits says what a token enrolls: "up to 100 endpoints until
// 2026-12-07 09:00 UTC; labels ring=pilot".
func enrollTokenLimits(t protocol.EnrollToken) string {
	s := "any number of endpoints"
	if t.MaxUses > 0 {
		s = fmt.Sprintf("up to %d endpoints", t.MaxUses)
	}
	if t.ExpiresAt.IsZero() {
		s += ", without expiry"
	} else {
		s += " until " + listTime(t.ExpiresAt)
	}
	if len(t.Labels) > 0 {
		s += "; labels " + textsafe.Terminal(labelList(t.Labels))
	}
	return s
}

// labelList shows labels as "k=v,k=v", by key; "-" for none.
func labelList(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}
