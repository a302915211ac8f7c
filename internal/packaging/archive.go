package packaging

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// member is one file of a .tar.gz or .zip: its name inside the archive's
// top directory, where it comes from and its mode.
type member struct {
	name, src string
	mode      fs.FileMode
}

// buildDarwin writes patch-agent_<version>_darwin_<arch>.tar.gz: the
// binary and install.sh in a directory of the archive's name.
func buildDarwin(opts Options, bins, arch string) (string, error) {
	bin, err := binary(bins, "patch-agent")
	if err != nil {
		return "", err
	}
	base := fmt.Sprintf("patch-agent_%s_darwin_%s", opts.Version, arch)
	path := filepath.Join(opts.OutDir, base+".tar.gz")
	return path, writeTarGz(path, base, opts.Time, []member{
		{"patch-agent", bin, 0o755},
		{"install.sh", filepath.Join(opts.Root, "packaging/install.sh"), 0o755},
	})
}

// buildWindows writes patch-agent_<version>_windows_<arch>.zip: the
// binary and install.ps1 in a directory of the archive's name.
func buildWindows(opts Options, bins, arch string) (string, error) {
	bin, err := binary(bins, "patch-agent.exe")
	if err != nil {
		return "", err
	}
	base := fmt.Sprintf("patch-agent_%s_windows_%s", opts.Version, arch)
	path := filepath.Join(opts.OutDir, base+".zip")
	return path, writeZip(path, base, opts.Time, []member{
		{"patch-agent.exe", bin, 0o755},
		{"install.ps1", filepath.Join(opts.Root, "packaging/install.ps1"), 0o644},
	})
}

// writeTarGz writes members under the directory top into a new gzipped
// tar at path, owned by root, stamped t.
func writeTarGz(path, top string, t time.Time, members []member) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	hdr := func(name string, mode fs.FileMode, size int64, typ byte) *tar.Header {
		return &tar.Header{Name: name, Mode: int64(mode), Size: size, Typeflag: typ, ModTime: t,
			Uname: "root", Gname: "wheel", Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(top+"/", 0o755, 0, tar.TypeDir)); err != nil {
		return err
	}
	for _, m := range members {
		b, err := os.ReadFile(m.src)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr(top+"/"+m.name, m.mode, int64(len(b)), tar.TypeReg)); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// writeZip writes members under the directory top into a new zip at
// path, stamped t.
func writeZip(path, top string, t time.Time, members []member) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	zw := zip.NewWriter(f)
	for _, m := range members {
		src, err := os.Open(m.src)
		if err != nil {
			return err
		}
		h := &zip.FileHeader{Name: top + "/" + m.name, Method: zip.Deflate, Modified: t}
		h.SetMode(m.mode)
		w, err := zw.CreateHeader(h)
		if err == nil {
			_, err = io.Copy(w, src)
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	return zw.Close()
}
