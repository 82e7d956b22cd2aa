package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/gossip"
)

func keygenCommand(stdout io.Writer) *cobra.Command {
	return spec{
		Name:       "keygen",
		ShortUsage: "registry keygen",
		ShortHelp:  "print a new random gossip key (base64, for --gossip-key)",
		FlagSet:    pflag.NewFlagSet("registry keygen", pflag.ContinueOnError),
		Exec: func(context.Context, []string) error {
			k := make([]byte, gossip.KeySize)
			if _, err := rand.Read(k); err != nil {
				return err
			}
			_, err := fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k))
			return err
		},
	}.command()
}
