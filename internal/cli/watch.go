package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/watch"
)

func watchCmd(o *options) *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Run as a daemon: keep the repos of a config file healthy, serve metrics and webhooks",
		Long: `watch reaps every repository of its config file (docs/watch.md) on an interval and
when a push webhook arrives, each repository in its own cycle, with a persistent clone
under cache_dir. It serves /healthz, /readyz, /metrics (Prometheus), /api/pools (JSON)
and /webhook/REPO (GitHub, Gitea and GitLab push hooks) on the listen address, and
stops cleanly on SIGTERM or SIGINT. A bad config file exits 2 naming its line.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return usageError{errors.New("watch needs --config (or POOLBOY_CONFIG): the config file (see docs/watch.md)")}
			}
			cfg, err := watch.Load(config, o.env)
			if err != nil {
				return usageError{err}
			}
			return runWatch(cmd.Context(), cfg, o.verbose, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the watch config file (YAML, see docs/watch.md)")
	annotate(cmd.Flags(), "config", "POOLBOY_CONFIG")
	return cmd
}

func runWatch(ctx context.Context, cfg *watch.Config, verbose bool, stderr io.Writer) error {
	// git inherits poolboy's environment: the secrets read are no business of it.
	gitx.Conceal(cfg.Secrets...)
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := watch.New(cfg, watch.Options{Log: log})
	if err != nil {
		return usageError{fmt.Errorf("%s: concourse: %w", cfg.File, err)}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = watch.LimitListener(ln, watch.MaxConns)
	servers := []*http.Server{d.Server()}
	listeners := []net.Listener{ln}
	if cfg.WebhookListen != "" {
		hln, err := net.Listen("tcp", cfg.WebhookListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("webhook_listen: %w", err)
		}
		servers = append(servers, d.WebhookServer())
		listeners = append(listeners, watch.LimitListener(hln, watch.MaxConns))
	}
	served := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { served <- fmt.Errorf("serving %s: %w", listeners[i].Addr(), srv.Serve(listeners[i])) }()
	}
	log.Info("watching", "repos", len(cfg.Repos), "interval", cfg.Interval, "listen", ln.Addr().String(), "webhook_listen", cfg.WebhookListen, "cache_dir", cfg.CacheDir)

	dctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(dctx)
	}()
	select {
	case <-ctx.Done():
	case err = <-served:
		stop()
	}
	<-done // cycles in progress finished or abandoned; clones closed
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdown)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
