package source

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// newSSHKey makes an ed25519 key pair.
func newSSHKey(t *testing.T) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, priv
}

// writeSSHKey writes a fresh OpenSSH private key file into dir.
func writeSSHKey(t *testing.T, dir string) string {
	t.Helper()
	_, priv := newSSHKey(t)
	return writePrivateKey(t, dir, priv)
}

func writePrivateKey(t *testing.T, dir string, priv ed25519.PrivateKey) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "deploy key")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startSSHServer serves `git upload-pack` for repositories under root over
// SSH on loopback, accepting only clientKey. It returns the address and
// the server's host key.
func startSSHServer(t *testing.T, root string, clientKey ssh.PublicKey) (string, ssh.PublicKey) {
	t.Helper()
	hostSigner, _ := newSSHKey(t)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown client key")
		},
	}
	cfg.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	env := gitEnv(t)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serveSSHConn(conn, cfg, root, env)
			}()
		}
	}()
	return l.Addr().String(), hostSigner.PublicKey()
}

func serveSSHConn(conn net.Conn, cfg *ssh.ServerConfig, root string, env []string) {
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		for req := range chReqs {
			if req.Type != "exec" {
				_ = req.Reply(false, nil)
				continue
			}
			var payload struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			runUploadPack(ch, payload.Command, root, env)
			break
		}
	}
}

// runUploadPack runs "git-upload-pack '/path'" against root and reports
// the exit status on the channel.
func runUploadPack(ch ssh.Channel, command, root string, env []string) {
	defer ch.Close()
	name, arg, _ := strings.Cut(command, " ")
	status := uint32(1)
	defer func() {
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
	}()
	if name != "git-upload-pack" {
		return
	}
	repo := filepath.Join(root, filepath.Clean("/"+strings.Trim(arg, "'")))
	cmd := exec.Command("git", "upload-pack", repo)
	cmd.Env = env
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return
	}
	if err := cmd.Start(); err != nil {
		return
	}
	// Copy client input on our own goroutine: the client may keep its side
	// open after upload-pack exits, which must not hold up Wait.
	go func() {
		_, _ = io.Copy(stdin, ch)
		stdin.Close()
	}()
	if cmd.Wait() == nil {
		status = 0
	}
}

func TestFetchOverSSH(t *testing.T) {
	base := t.TempDir()
	up := newUpstream(t, base)
	keys := t.TempDir()
	clientSigner, clientPriv := newSSHKey(t)
	keyFile := writePrivateKey(t, keys, clientPriv)
	addr, hostKey := startSSHServer(t, base, clientSigner.PublicKey())
	otherHost, _ := newSSHKey(t)

	writeKnownHosts := func(name string, key ssh.PublicKey) string {
		path := filepath.Join(keys, name)
		line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
		if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	right := writeKnownHosts("known_hosts", hostKey)
	wrong := writeKnownHosts("known_hosts_wrong", otherHost.PublicKey())
	_, strangerPriv := newSSHKey(t)
	strangerDir := t.TempDir()
	strangerKey := writePrivateKey(t, strangerDir, strangerPriv)

	url := "ssh://git@" + addr + "/fleet.git"
	tests := []struct {
		name       string
		keyFile    string
		knownHosts string
		wantErr    string
	}{
		{"deploy key and pinned host key", keyFile, right, ""},
		{"host presents a different key", keyFile, wrong, "key mismatch"},
		{"deploy key not authorised", strangerKey, right, "unable to authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{URL: url, Dir: filepath.Join(t.TempDir(), "clone"), SSHKeyFile: tt.keyFile, KnownHostsFile: tt.knownHosts})
			if err != nil {
				t.Fatal(err)
			}
			head, _, err := s.Fetch(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if head != up.first {
				t.Fatalf("head = %s, want %s", head, up.first)
			}
		})
	}
}
