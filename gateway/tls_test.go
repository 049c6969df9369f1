package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// testCA makes a CA and issues server certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "streamgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a server certificate with the given serial to certFile/keyFile.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	// Write both, then rename into place: a reader never sees half a pair.
	os.WriteFile(certFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	os.Rename(keyFile+".tmp", keyFile)
	os.Rename(certFile+".tmp", certFile)
}

func TestTLSWithHTTP2CurlAndCertificateReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o644)
	ca.issue(t, 100, certFile, keyFile)
	s := startServer(t, func(c *gateway.Config) { c.TLS = gateway.TLSConfig{CertFile: certFile, KeyFile: keyFile} })
	s.endpoint = strings.Replace(s.endpoint, "http://", "https://", 1)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	var seen sync.Map
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	k := s.client(func(o *kinesis.Options) { o.HTTPClient = awsapi.SDKHTTPClient(&protoRecorder{next: tr, seen: &seen}) })
	createStream(t, k, "secure", 1)
	if _, ok := seen.Load("HTTP/2.0"); !ok {
		t.Fatal("TLS did not negotiate HTTP/2")
	}

	out, err := exec.Command("curl", "-sS", "--cacert", caFile, s.endpoint+"/healthz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("curl --cacert: %v %s", err, out)
	}
	if out, err := exec.Command("curl", "-sS", s.endpoint+"/healthz").CombinedOutput(); err == nil {
		t.Fatalf("curl trusted an unknown CA: %s", out)
	}

	serial := func() int64 {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(s.endpoint, "https://"), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 100 {
		t.Fatalf("serving serial %d", got)
	}
	ca.issue(t, 101, certFile, keyFile) // renewal, no restart
	deadline := time.Now().Add(10 * time.Second)
	for serial() != 101 {
		if time.Now().After(deadline) {
			t.Fatal("renewed certificate not served within 10 s")
		}
		time.Sleep(250 * time.Millisecond)
	}
}
