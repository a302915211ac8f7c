package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/adminclient"
	"github.com/patchline/patchline/internal/render"
	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

func newEndpointsCmd() *cobra.Command {
	var (
		cf             controllerFlags
		ef             evalFlags
		ff             feedsFlag
		client, format string
		repo           string
		drifting       bool
	)
	cmd := &cobra.Command{
		Use:   "endpoints --controller URL [--client ID] [--drifting] [--repo DIR]",
		Short: "List the endpoints with their ring, last report and drift; list, revoke and delete them",
		Long: `endpoints, on its own, lists the endpoints the controller plans for (every
enrolled endpoint but the revoked ones), or one client's, with their
hostname, ring, last report, and the updates they miss: MISSING counts the
desired updates an endpoint does not have, whatever holds them back (a
ring, a window, a halt, a failed install, a job under way), FAILED those
whose install failed. --drifting keeps the endpoints that miss one.

It reads the controller's state (GET /v1/state) and the revision each
client runs (GET /v1/status), loads each client's policy at that revision
from the fleet repository (--repo, which must have fetched it), and plans
as the controller does (with the feeds of --feeds-dir, as patchd's). A
read token will do.

  list     every endpoint, or one client's, with when it enrolled and last
           reported, and whether it is revoked (a read token)
  revoke   the endpoint's node key is refused from now on: its agent gets
           401 on every request and no more jobs; it leaves plans, state
           and compliance figures, but stays listed, revoked, with its
           history (an admin token)
  delete   the endpoint, its inventory, jobs and results are deleted (the
           audit log keeps their entries); its id is free (an admin token)

The machine of a revoked or deleted endpoint comes back only by enrolling
again with its client's enrollment secret (stop the agent, delete
identity.json in its state directory, start it), as a new endpoint; to keep
it out, rotate that secret too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := render.ParseFormat(format)
			if err != nil || f == render.Markdown {
				return fmt.Errorf("unknown format %q: want text or json", format)
			}
			if client != "" {
				if err := protocol.CheckClientID(client); err != nil {
					return fmt.Errorf("--client: %w", err)
				}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			rows, err := endpointDrifts(cmd.Context(), c, driftOptions{client: client, repo: repo, ef: ef, ff: ff})
			if err != nil {
				return err
			}
			if drifting {
				rows = slices.DeleteFunc(rows, func(r render.EndpointDrift) bool { return r.Missing == 0 })
			}
			return render.Endpoints(cmd.OutOrStdout(), f, rows)
		},
	}
	cf.register(cmd)
	ef.register(cmd)
	ff.register(cmd)
	cmd.Flags().StringVar(&client, "client", "", "list only this client's endpoints")
	cmd.Flags().BoolVar(&drifting, "drifting", false, "list only the endpoints that miss a desired update")
	cmd.Flags().StringVar(&repo, "repo", ".", "fleet repository `DIR` (or any directory inside it) holding the revisions the controller runs")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.AddCommand(newEndpointsListCmd(), newEndpointsRevokeCmd(), newEndpointsDeleteCmd())
	return cmd
}

// driftOptions are what endpointDrifts needs besides the controller.
type driftOptions struct {
	client, repo string
	ef           evalFlags
	ff           feedsFlag
}

// endpointDrifts plans the endpoints of the controller's state (one
// client's, or all), each client at the revision the controller runs for
// it, and sums up each endpoint's decisions. A client the controller runs
// no revision for is planned as the controller plans it: as one the fleet
// repository does not have (nothing it reports is drift).
func endpointDrifts(ctx context.Context, c *adminclient.Client, o driftOptions) ([]render.EndpointDrift, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := c.State(ctx)
	if err != nil {
		return nil, err
	}
	if o.client != "" {
		snap.Endpoints = slices.DeleteFunc(snap.Endpoints, func(ep *protocol.Endpoint) bool { return ep.Client != o.client })
	}
	if err := o.ff.enrich(ctx, snap); err != nil {
		return nil, err
	}
	running := runningRevisions(st)
	// The clients to plan at each revision ("" for none).
	byRev := make(map[string][]string)
	for _, ep := range snap.Endpoints {
		rev := running[ep.Client]
		if !slices.Contains(byRev[rev], ep.Client) {
			byRev[rev] = append(byRev[rev], ep.Client)
		}
	}
	revs := slices.Sorted(maps.Keys(byRev))
	var repo string
	if slices.ContainsFunc(revs, func(rev string) bool { return rev != "" }) {
		if repo, err = repoDir(o.repo, true); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	l, err := o.ef.loader(now)
	if err != nil {
		return nil, err
	}
	var decisions []plan.PairDecision
	for _, rev := range revs {
		clients := byRev[rev]
		fleet := &schema.Fleet{Clients: map[string]*schema.Client{}}
		if rev != "" {
			if fleet, err = loadClientsAt(ctx, l, repo, rev, clients); err != nil {
				return nil, err
			}
		}
		part := &protocol.Snapshot{APIVersion: snap.APIVersion, GeneratedAt: snap.GeneratedAt}
		for _, ep := range snap.Endpoints {
			if slices.Contains(clients, ep.Client) {
				part.Endpoints = append(part.Endpoints, ep)
			}
		}
		res, err := plan.Plan(fleet, part, now, plan.Options{Decisions: true})
		if err != nil {
			return nil, fmt.Errorf("plan revision %s: %w", protocol.ShortRevision(rev), err)
		}
		decisions = append(decisions, res.Decisions...)
	}
	return render.EndpointDrifts(snap, decisions), nil
}

// runningRevisions maps each client to the revision the controller
// applied for it last, which it runs. A client without one is one the
// fleet repository does not have (or none of whose revisions loaded).
func runningRevisions(st *protocol.Status) map[string]string {
	running := make(map[string]string)
	for _, r := range st.Revisions {
		running[r.Client] = r.Applied
	}
	return running
}

// loadClientsAt loads clients at revision rev of the Git repository
// repo; a client with errors there is an error.
func loadClientsAt(ctx context.Context, l *loader.Loader, repo, rev string, clients []string) (*schema.Fleet, error) {
	files, hash, err := source.ReadRevision(ctx, repo, rev, l.Wants)
	if err != nil {
		return nil, fmt.Errorf("read revision %s the controller runs from %s (fetch the fleet repo first): %w", protocol.ShortRevision(rev), repo, err)
	}
	fleet, err := l.LoadClients(ctx, files, hash, clients)
	if err != nil {
		return nil, fmt.Errorf("load revision %s: %w", protocol.ShortRevision(rev), err)
	}
	if err := fleetErrors(fleet, describe(repo, protocol.ShortRevision(rev))); err != nil {
		return nil, err
	}
	return fleet, nil
}

func newEndpointsListCmd() *cobra.Command {
	var (
		cf             controllerFlags
		client, format string
	)
	cmd := &cobra.Command{
		Use:   "list [--client ID]",
		Short: "List the enrolled endpoints, revoked ones too",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("unknown format %q: want text or json", format)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			eps, err := c.Endpoints(cmd.Context(), client)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(protocol.EndpointList{Endpoints: eps})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCLIENT\tHOSTNAME\tENROLLED\tLAST REPORT\tREVOKED")
			for _, e := range eps {
				revoked := "-"
				if !e.RevokedAt.IsZero() {
					revoked = listTime(e.RevokedAt) + " by " + e.RevokedBy
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", textsafe.Terminal(e.ID), textsafe.Terminal(e.Client), textsafe.Terminal(e.Hostname),
					listTime(e.EnrolledAt), listTime(e.LastSeen), textsafe.Terminal(revoked))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&client, "client", "", "list only this client's endpoints")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func newEndpointsRevokeCmd() *cobra.Command {
	var cf controllerFlags
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an endpoint: its node key is refused and it gets no job from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			e, err := c.RevokeEndpoint(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "endpoint %s (%s, client %s) revoked at %s; its agent is refused from now on\n",
				textsafe.Terminal(e.ID), textsafe.Terminal(e.Hostname), textsafe.Terminal(e.Client), listTime(e.RevokedAt))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func newEndpointsDeleteCmd() *cobra.Command {
	var cf controllerFlags
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete an endpoint with its inventory, jobs and results (the audit log keeps them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			e, err := c.DeleteEndpoint(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "endpoint %s (%s, client %s) deleted; it may enroll again as a new endpoint\n",
				textsafe.Terminal(e.ID), textsafe.Terminal(e.Hostname), textsafe.Terminal(e.Client))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
