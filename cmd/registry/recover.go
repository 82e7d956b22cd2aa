package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/raft"
)

func recoverCommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry recover", pflag.ContinueOnError)
	nodeID := fs.String("node-id", "", "the stopped server's id (required)")
	dataDir := fs.String("data-dir", "", "the stopped server's data directory (required)")
	raftAddr := fs.String("raft-addr", "", "the Raft address other servers will dial, e.g. 10.0.0.3:7401 (required)")
	return spec{
		Name:       "recover",
		ShortUsage: "registry recover --node-id ID --data-dir DIR --raft-addr HOST:PORT",
		ShortHelp:  "make a stopped server the only voter of its cluster, when a majority is lost for good",
		LongHelp: "Rewrites the Raft configuration in DIR so that this server is the only voter\n" +
			"(Raft's peers.json procedure). Then start it with `registry server` as before,\n" +
			"without --bootstrap or --join: it leads alone and serves everything its data\n" +
			"held. Start new servers with --join pointing at it. Only for a cluster whose\n" +
			"majority will never come back: writes committed by the lost servers after this\n" +
			"server's last entry are gone.",
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 0 || *nodeID == "" || *dataDir == "" || *raftAddr == "" {
				return usagef("give --node-id, --data-dir and --raft-addr, and nothing else")
			}
			cfg := raft.DefaultConfig()
			cfg.ID, cfg.DataDir, cfg.RaftAddr = *nodeID, *dataDir, *raftAddr
			if err := raft.Recover(cfg); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "recovered: %s is now the only voter (Raft address %s); start it with `registry server` as before, without --bootstrap or --join\n", *nodeID, *raftAddr)
			return nil
		},
	}.command()
}
