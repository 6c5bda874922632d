package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/creds"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "inspect the Prescient settings",
		Subcommands: []*cli.Command{{
			Name:   "show",
			Usage:  "print the effective settings and where each came from (secrets masked)",
			Flags:  authFlags(),
			Action: configShow,
		}},
	}
}

func configShow(c *cli.Context) error {
	s, err := loadSettings(c)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for _, e := range s.Entries() {
		v := e.Value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t(%s)\n", e.Name, v, e.Source)
	}
	fmt.Fprintln(w)
	if s.Configured() {
		stac, _ := s.STACURL()
		fmt.Fprintf(w, "catalog\t%s\n", stac)
		switch {
		case s.Mode() == creds.ModeAPIKey:
		case s.AuthProvider == creds.ProviderGoogle:
			au, _ := creds.URLJoin(s.AuthURL, "/o/oauth2/auth")
			tu, _ := creds.URLJoin(s.AuthURL, "/o/oauth2/token")
			fmt.Fprintf(w, "google sign-in\t%s, token %s, redirect http://localhost:%d/\n", au, tu, s.GoogleRedirectPort)
		default:
			auth, _ := s.Authority()
			fmt.Fprintf(w, "authority\t%s\n", auth)
		}
		if s.Mode() != creds.ModeAPIKey {
			from := "STS AssumeRoleWithWebIdentity " + s.AWSRole
			if s.AWSRole == "" {
				from, _ = creds.URLJoin(s.EndpointURL, "fileproxy/credentials")
				from += " with the bearer (no " + creds.VarAWSRole + ")"
			}
			fmt.Fprintf(w, "bucket credentials\t%s\n", from)
		}
		fmt.Fprintf(w, "mode\t%s\n", s.Mode())
		if err := s.Validate(); err != nil {
			fmt.Fprintf(w, "problem\t%v\n", err)
		}
	} else {
		fmt.Fprintf(w, "mode\tnot configured (%s unset): mount needs --stac-url\n", creds.VarEndpointURL)
	}
	fmt.Fprintf(w, "session store\t%s (default profile in %s)\n", s.Store.Dir, s.Store.DefaultFile)
	if err := w.Flush(); err != nil {
		return err
	}
	for _, warn := range s.FileWarnings() {
		fmt.Fprintf(c.App.Writer, "warning: %s\n", warn)
	}
	return nil
}
