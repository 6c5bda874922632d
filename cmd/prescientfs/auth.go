package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/pkg/browser"
	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/creds"
)

// authFlags select the settings file and the saved-session profile; the
// auth, config and mount commands take them.
func authFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "env-file", Usage: "read settings from `FILE` instead of ./" + creds.EnvFileName + " (it must exist)"},
		&cli.StringFlag{Name: "auth-profile", Usage: "saved-session `PROFILE` (default: " + creds.VarProfile +
			", else the default named in ~/.prescient.json, else \"default\")"},
	}
}

// loadSettings reads the Prescient settings for a command.
func loadSettings(c *cli.Context) (*creds.Settings, error) {
	return creds.Load(creds.LoadOptions{
		EnvFile: c.String("env-file"),
		Flags:   map[string]string{creds.VarProfile: c.String("auth-profile")},
	})
}

// prescientAuth is the mount's sign-in: (nil, nil) when no Prescient
// endpoint is configured anywhere (the mount then runs anonymously or with
// the AWS chain); otherwise a token and bucket credentials are obtained
// before it returns, so a mount without a usable session fails at once
// with "run `prescientfs auth login`".
func prescientAuth(ctx context.Context, c *cli.Context, log *slog.Logger) (*creds.MountAuth, error) {
	s, err := loadSettings(c)
	if err != nil {
		return nil, err
	}
	if !s.Configured() {
		return nil, nil
	}
	for _, warn := range s.FileWarnings() {
		log.Warn(warn)
	}
	ma, err := creds.NewMountAuth(ctx, s, creds.Options{Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("signed in", "mode", string(ma.Mode), "profile", ma.Profile, "catalog", ma.STACURL)
	return ma, nil
}

func authCommand() *cli.Command {
	return &cli.Command{
		Name:  "auth",
		Usage: "sign in to Prescient and manage saved sessions",
		Subcommands: []*cli.Command{
			{
				Name:  "login",
				Usage: "sign in (with a browser where one can open, else by device code or a printed URL) and save the session in the profile",
				Flags: append(authFlags(),
					&cli.BoolFlag{Name: "device-code", Usage: "Microsoft: sign in with a code on another device (the default without a display, e.g. over SSH)"},
					&cli.BoolFlag{Name: "browser", Usage: "sign in with a browser on this machine (the default where one can be opened)"},
					&cli.BoolFlag{Name: "no-browser", Usage: "Google: print the sign-in URL instead of opening a browser"},
				),
				Action: authLogin,
			},
			{Name: "logout", Usage: "forget the profile's tokens", Flags: authFlags(), Action: authLogout},
			{Name: "status", Usage: "show the account, tenant and expiries (never a secret)", Flags: authFlags(), Action: authStatus},
			{
				Name:   "print-access-token",
				Usage:  "print a fresh API token (the id_token), e.g. for curl or pystac-client",
				Flags:  authFlags(),
				Action: authPrintToken,
			},
			{
				Name:  "profile",
				Usage: "list, show, select or copy saved-session profiles",
				Subcommands: []*cli.Command{
					{Name: "list", Usage: "list profiles (* marks the default)", Flags: authFlags(), Action: profileList},
					{Name: "show", Usage: "show a profile's saved settings", ArgsUsage: "[PROFILE]", Flags: authFlags(), Action: profileShow},
					{Name: "use", Usage: "make PROFILE the default", ArgsUsage: "PROFILE", Flags: authFlags(), Action: profileUse},
					{Name: "copy", Usage: "copy a profile's settings and session", ArgsUsage: "FROM TO", Flags: authFlags(), Action: profileCopy},
				},
			},
		},
	}
}

func interruptible(c *cli.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(c.Context, os.Interrupt)
}

func authLogin(c *cli.Context) error {
	if c.Bool("device-code") && c.Bool("browser") {
		return errors.New("choose one of --device-code and --browser")
	}
	s, err := loadSettings(c)
	if err != nil {
		return err
	}
	if err := s.Validate(); err != nil {
		return err
	}
	switch s.Mode() {
	case creds.ModeAPIKey:
		return fmt.Errorf("%s is set: API-key mode needs no login", creds.VarAPIKey)
	case creds.ModeServicePrincipal:
		return fmt.Errorf("%s is set: a service principal signs in by itself and needs no login", creds.VarClientSecret)
	}
	ctx, cancel := interruptible(c)
	defer cancel()
	var tok creds.Token
	if s.AuthProvider == creds.ProviderGoogle {
		tok, err = googleLogin(ctx, c, s)
	} else {
		tok, err = microsoftLogin(ctx, c, s)
	}
	if err != nil {
		return err
	}
	if err := s.Store.SaveProfile(ctx, s.Profile, s.ProfileValues()); err != nil {
		return fmt.Errorf("save profile %q: %w", s.Profile, err)
	}
	if def, err := s.Store.DefaultProfile(); err == nil && def == "" {
		if err := s.Store.SetDefaultProfile(ctx, s.Profile); err != nil {
			return err
		}
	}
	tenant := ""
	if tok.TenantID != "" {
		tenant = " (tenant " + tok.TenantID + ")"
	}
	fmt.Fprintf(errWriter(c), "prescientfs: signed in as %s%s; session saved in profile %q (%s)\n",
		tok.Username, tenant, s.Profile, s.Store.ProfileDir(s.Profile))
	return nil
}

// canOpenBrowser reports whether a browser can be opened on this machine,
// as `az login` decides: not over SSH, and on Linux only with a display.
func canOpenBrowser() bool {
	if os.Getenv("SSH_CONNECTION") != "" || os.Getenv("SSH_TTY") != "" {
		return false
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}

// microsoftLogin signs in with MSAL: the browser (as the SDK's
// acquire_token_interactive) where one can be opened or with --browser,
// else the device code.
func microsoftLogin(ctx context.Context, c *cli.Context, s *creds.Settings) (creds.Token, error) {
	pc, err := creds.NewPublicClient(s, creds.ClientOptions{})
	if err != nil {
		return creds.Token{}, err
	}
	if c.Bool("browser") || (!c.Bool("device-code") && canOpenBrowser()) {
		var openErr error
		tok, err := pc.LoginBrowser(ctx, func(u string) error {
			openErr = browser.OpenURL(u)
			return openErr
		})
		if openErr == nil || c.Bool("browser") {
			return tok, err
		}
		fmt.Fprintf(errWriter(c), "prescientfs: could not open a browser (%v); signing in with a device code instead\n", openErr)
	}
	return pc.LoginDeviceCode(ctx, func(info creds.DeviceCodeInfo) {
		printDeviceCode(c.App.ErrWriter, info)
	})
}

// googleLogin runs Google's installed-app flow: the browser opens where it
// can; otherwise the URL is printed and the command waits for the browser
// (on any machine whose localhost port reaches this one) to come back.
func googleLogin(ctx context.Context, c *cli.Context, s *creds.Settings) (creds.Token, error) {
	if c.Bool("device-code") {
		return creds.Token{}, errors.New("there is no device code for Google sign-in: use the printed URL (see --no-browser)")
	}
	g, err := creds.NewGoogleClient(s, creds.ClientOptions{})
	if err != nil {
		return creds.Token{}, err
	}
	var open func(string) error
	if c.Bool("browser") || (!c.Bool("no-browser") && canOpenBrowser()) {
		open = browser.OpenURL
	}
	w := errWriter(c)
	return g.Login(ctx, open, func(p creds.GoogleLoginPrompt) {
		fmt.Fprintf(w, "To sign in with Google, open this URL in a browser:\nURL: %s\n", p.URL)
		fmt.Fprintf(w, "Waiting for the browser to return to %s (%s).\n", p.RedirectURI, creds.VarGoogleRedirectPort)
		fmt.Fprintf(w, "Over SSH, forward the port first from your computer: ssh -L %d:localhost:%d <this host>\n", p.Port, p.Port)
	})
}

// printDeviceCode tells the person where to go; the "URL:" and "Code:"
// lines are stable for scripts and tests.
func printDeviceCode(w io.Writer, info creds.DeviceCodeInfo) {
	if w == nil {
		w = os.Stderr
	}
	if info.Message != "" {
		fmt.Fprintln(w, info.Message)
	}
	fmt.Fprintf(w, "URL: %s\nCode: %s\n", info.VerificationURL, info.UserCode)
}

func errWriter(c *cli.Context) io.Writer {
	if c.App.ErrWriter != nil {
		return c.App.ErrWriter
	}
	return os.Stderr
}

func authLogout(c *cli.Context) error {
	s, err := loadSettings(c)
	if err != nil {
		return err
	}
	if err := s.Store.Logout(c.Context, s.Profile); err != nil {
		return err
	}
	fmt.Fprintf(errWriter(c), "prescientfs: signed out of profile %q\n", s.Profile)
	return nil
}

// sessionFor builds the session without the up-front checks.
func sessionFor(c *cli.Context) (*creds.Settings, *creds.MountAuth, error) {
	s, err := loadSettings(c)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	// The command prints failures itself; renewal logs would repeat them.
	ma, err := creds.NewMountAuth(c.Context, s, creds.Options{Log: slog.New(slog.DiscardHandler), NoCheck: true})
	return s, ma, err
}

func authStatus(c *cli.Context) error {
	s, ma, err := sessionFor(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
	defer cancel()
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "profile:\t%s\n", s.Profile)
	fmt.Fprintf(w, "mode:\t%s\n", ma.Mode)
	if ma.Mode == creds.ModeUser {
		fmt.Fprintf(w, "provider:\t%s\n", s.AuthProvider)
	}
	fmt.Fprintf(w, "catalog:\t%s\n", ma.STACURL)
	var failed error
	if ma.Bearer != nil {
		tok, err := ma.Bearer.Token(ctx)
		if err != nil {
			fmt.Fprintf(w, "session:\tnot usable: %v\n", err)
			failed = err
		} else {
			fmt.Fprintf(w, "account:\t%s\n", tok.Username)
			if tok.TenantID != "" {
				fmt.Fprintf(w, "tenant:\t%s\n", tok.TenantID)
			}
			fmt.Fprintf(w, "token expires:\t%s (in %s)\n", tok.Expires.Local().Format(time.RFC3339), time.Until(tok.Expires).Round(time.Second))
		}
	}
	switch {
	case failed != nil:
	case ma.S3Creds != nil:
		fmt.Fprintf(w, "bucket credentials from:\t%s\n", ma.CredentialsFrom)
		if _, err := ma.S3Creds.Retrieve(ctx); err != nil {
			fmt.Fprintf(w, "bucket credentials:\tnot available: %v\n", err)
			failed = err
		} else {
			exp := ma.CredentialsExpiry()
			fmt.Fprintf(w, "bucket credentials expire:\t%s (in %s)\n", exp.Local().Format(time.RFC3339), time.Until(exp).Round(time.Second))
		}
	default:
		fmt.Fprintf(w, "bucket credentials:\tAWS default chain (no %s)\n", creds.VarAWSRole)
	}
	_ = w.Flush() // a status printed to a closed output changes nothing
	if failed != nil {
		return cli.Exit("", 1)
	}
	return nil
}

func authPrintToken(c *cli.Context) error {
	_, ma, err := sessionFor(c)
	if err != nil {
		return err
	}
	if ma.Bearer == nil {
		return fmt.Errorf("API-key mode has no token: send the header api-key: $%s", creds.VarAPIKey)
	}
	tok, err := ma.Bearer.Token(c.Context)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, tok.Value)
	return nil
}

func profileList(c *cli.Context) error {
	s, err := loadSettings(c)
	if err != nil {
		return err
	}
	names, err := s.Store.Profiles()
	if err != nil {
		return err
	}
	def, _ := s.Store.DefaultProfile()
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for _, n := range names {
		mark, state := " ", "signed out"
		if n == def {
			mark = "*"
		}
		if s.Store.HasSession(n) {
			state = "session saved"
		}
		fmt.Fprintf(w, "%s %s\t%s\n", mark, n, state)
	}
	return w.Flush()
}

func profileShow(c *cli.Context) error {
	s, err := loadSettings(c)
	if err != nil {
		return err
	}
	name := s.Profile
	if c.NArg() > 0 {
		name = c.Args().First()
	}
	if err := creds.ValidProfileName(name); err != nil {
		return err
	}
	vals, err := s.Store.LoadProfile(name)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "profile:\t%s\n", name)
	fmt.Fprintf(w, "directory:\t%s\n", s.Store.ProfileDir(name))
	fmt.Fprintf(w, "session saved:\t%v\n", s.Store.HasSession(name))
	for _, e := range s.Entries() {
		if v, ok := vals[e.Name]; ok {
			fmt.Fprintf(w, "%s\t%s\n", e.Name, v)
		}
	}
	return w.Flush()
}

func profileUse(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("usage: prescientfs auth profile use PROFILE")
	}
	s, err := loadSettings(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	if _, err := os.Stat(s.Store.ProfileDir(name)); err != nil {
		return fmt.Errorf("profile %q does not exist (sign in with `prescientfs auth login --auth-profile %s`)", name, name)
	}
	return s.Store.SetDefaultProfile(c.Context, name)
}

func profileCopy(c *cli.Context) error {
	if c.NArg() != 2 {
		return errors.New("usage: prescientfs auth profile copy FROM TO")
	}
	s, err := loadSettings(c)
	if err != nil {
		return err
	}
	return s.Store.CopyProfile(c.Context, c.Args().Get(0), c.Args().Get(1))
}
