package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/fs"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "print a live mount's read counters (requests, bytes fetched, cache hits, bytes served)",
		ArgsUsage: "MOUNTPOINT",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: prescientfs stats MOUNTPOINT", 2)
			}
			data, err := os.ReadFile(filepath.Join(c.Args().First(), fs.StatsFile))
			if err != nil {
				return fmt.Errorf("%s is not a live prescientfs mount: %w", c.Args().First(), err)
			}
			_, err = os.Stdout.Write(data)
			return err
		},
	}
}
