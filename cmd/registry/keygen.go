package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/switchyard-io/switchyard/gossip"
)

func keygenCommand(stdout io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name:       "keygen",
		ShortUsage: "registry keygen",
		ShortHelp:  "print a new random gossip key (base64, for --gossip-key)",
		FlagSet:    flag.NewFlagSet("registry keygen", flag.ContinueOnError),
		Exec: func(context.Context, []string) error {
			k := make([]byte, gossip.KeySize)
			if _, err := rand.Read(k); err != nil {
				return err
			}
			_, err := fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k))
			return err
		},
	}
}
