// Package certs makes the certificates of a Switchyard cluster and the TLS
// configuration servers use between themselves. A certificate carries its
// role in its subject's organizational unit: servers accept Raft and
// forwarded writes only from a peer whose certificate, signed by the
// cluster's CA, says "switchyard-server". A header cannot grant that.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Roles a certificate can carry.
const (
	RoleServer = "switchyard-server"
	RoleClient = "switchyard-client"
)

// newKey makes a P-256 key and a random 127-bit serial number.
func newKey() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return key, sn, err
}

func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// NewCA makes a self-signed certificate authority (ECDSA P-256).
func NewCA(name string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, sn, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: name, Organization: []string{"Switchyard"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// Issue makes a certificate for role, signed by the CA, valid for hosts
// (IP addresses or DNS names) as a server and usable as a client.
func Issue(caCertPEM, caKeyPEM []byte, role, name string, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if role != RoleServer && role != RoleClient {
		return nil, nil, fmt.Errorf("certs: role %q: use %s or %s", role, RoleServer, RoleClient)
	}
	ca, err := tls.X509KeyPair(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("certs: CA: %w", err)
	}
	key, sn, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: name, OrganizationalUnit: []string{role}, Organization: []string{"Switchyard"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// IsServer reports whether cert carries the server role.
func IsServer(cert *x509.Certificate) bool {
	return slices.Contains(cert.Subject.OrganizationalUnit, RoleServer)
}

// CheckServerNamed refuses a certificate that is not a server's issued to
// the server id (its common name, as `registry tls cert --name` sets it,
// or one of its DNS names): a server certificate of the right CA proves a
// server, and only this check proves which one.
func CheckServerNamed(cert *x509.Certificate, id string) error {
	if !IsServer(cert) {
		return fmt.Errorf("certs: the certificate of %q is not a server's (role %v)", cert.Subject.CommonName, cert.Subject.OrganizationalUnit)
	}
	if cert.Subject.CommonName != id && !slices.Contains(cert.DNSNames, id) {
		return fmt.Errorf("certs: the certificate is %q's, not %s's", cert.Subject.CommonName, id)
	}
	return nil
}

// PeerConfig is the TLS configuration of a server towards other servers,
// for both ends of a connection: it presents its own certificate and
// accepts only a peer whose certificate chains to the CA and carries
// RoleServer. Addresses are not checked (servers are dialled by IP, and
// the role is what authorises).
func PeerConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	own, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(own.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certs: certificate: %w", err)
	}
	if !IsServer(leaf) {
		return nil, fmt.Errorf("certs: the certificate of %q is not a server's (its role is %v)", leaf.Subject.CommonName, leaf.Subject.OrganizationalUnit)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("certs: no CA certificate in the CA file")
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("certs: the peer sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, b := range raw {
			c, err := x509.ParseCertificate(b)
			if err != nil {
				return fmt.Errorf("certs: peer certificate: %w", err)
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("certs: peer certificate %q: %w", certs[0].Subject.CommonName, err)
		}
		if !IsServer(certs[0]) {
			return fmt.Errorf("certs: peer %q is not a server (role %v)", certs[0].Subject.CommonName, certs[0].Subject.OrganizationalUnit)
		}
		return nil
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{own},
		ClientAuth:   tls.RequireAnyClientCert,
		// The chain and the role are checked by VerifyPeerCertificate, on
		// both ends; host names are not what authorises a server.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verify,
	}, nil
}

// APIConfigs are the TLS configurations of a server's HTTP API: server
// serves it (verifying clients' certificates against the CA when
// verifyClients), client calls other servers' APIs (trusting the CA, and
// presenting this server's certificate). Without caPEM the system's roots
// are trusted and clients cannot be verified.
func APIConfigs(certPEM, keyPEM, caPEM []byte, verifyClients bool) (server, client *tls.Config, err error) {
	own, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: certificate and key: %w", err)
	}
	var pool *x509.CertPool
	if len(caPEM) > 0 {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, nil, errors.New("certs: no CA certificate in the CA file")
		}
	}
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{own}}
	if verifyClients {
		if pool == nil {
			return nil, nil, errors.New("certs: verifying clients needs the CA that signs their certificates")
		}
		server.ClientAuth, server.ClientCAs = tls.RequireAndVerifyClientCert, pool
	}
	client = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{own}}
	return server, client, nil
}

// ClientConfig is a TLS configuration for a client of the API: it trusts
// caPEM (the system's roots when empty) and presents certPEM/keyPEM when
// given.
func ClientConfig(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("certs: no CA certificate in the CA file")
		}
	}
	if len(certPEM) > 0 || len(keyPEM) > 0 {
		own, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("certs: client certificate and key: %w", err)
		}
		c.Certificates = []tls.Certificate{own}
	}
	return c, nil
}
