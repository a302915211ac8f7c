package feeds

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/patchline/patchline/protocol"
)

// KEVFile is the name CISA publishes the catalog under, and the name it
// has in a feed directory.
const KEVFile = "known_exploited_vulnerabilities.json"

// kevFeed is a parsed KEV catalog.
type kevFeed struct {
	file    File
	entries map[string]KEVEntry
}

// kevVulnerability is one element of the catalog's vulnerabilities array,
// with the fields its JSON schema requires as pointers so a missing one is
// told apart from an empty one.
type kevVulnerability struct {
	CVEID             *string `json:"cveID"`
	VendorProject     *string `json:"vendorProject"`
	Product           *string `json:"product"`
	VulnerabilityName *string `json:"vulnerabilityName"`
	DateAdded         *string `json:"dateAdded"`
	ShortDescription  *string `json:"shortDescription"`
	RequiredAction    *string `json:"requiredAction"`
	DueDate           *string `json:"dueDate"`
	Ransomware        *string `json:"knownRansomwareCampaignUse"`
}

// parseKEV reads CISA's catalog as its JSON schema
// (known_exploited_vulnerabilities_schema.json) describes it, refusing a
// catalog whose count does not match its entries.
func parseKEV(ctx context.Context, name string, r io.Reader) (*kevFeed, error) {
	s := newJSONStream(name, r)
	feed := &kevFeed{file: File{Feed: FeedKEV}, entries: make(map[string]KEVEntry)}
	seen := once{}
	count := 0
	if err := s.delim("", '{'); err != nil {
		return nil, err
	}
	for s.more() {
		key, err := s.key("")
		if err != nil {
			return nil, err
		}
		if err := seen.see(s, key); err != nil {
			return nil, err
		}
		switch key {
		case "catalogVersion":
			err = s.decode(key, &feed.file.Version)
		case "dateReleased":
			var v string
			off := s.dec.InputOffset()
			if err = s.decode(key, &v); err == nil {
				if feed.file.Published, err = parseTimestamp(v); err != nil {
					err = s.failAt(off, key, "%w", err)
				}
			}
		case "count":
			err = s.decode(key, &count)
		case "vulnerabilities":
			err = parseKEVVulnerabilities(ctx, s, feed.entries)
		default:
			err = s.skip(key)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := s.delim("", '}'); err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if k, ok := seen.missing("catalogVersion", "dateReleased", "count", "vulnerabilities"); ok {
		return nil, s.fail("", fmt.Errorf("no %q: not a KEV catalog", k))
	}
	if count != len(feed.entries) {
		return nil, s.fail("count", fmt.Errorf("says %d vulnerabilities, the catalog lists %d", count, len(feed.entries)))
	}
	feed.file.Entries = len(feed.entries)
	return feed, nil
}

func parseKEVVulnerabilities(ctx context.Context, s *jsonStream, into map[string]KEVEntry) error {
	if err := s.delim("vulnerabilities", '['); err != nil {
		return err
	}
	for i := 0; s.more(); i++ {
		path := fmt.Sprintf("vulnerabilities[%d]", i)
		if err := checkCtx(ctx, i); err != nil {
			return err
		}
		off := s.dec.InputOffset()
		var v kevVulnerability
		if err := s.decode(path, &v); err != nil {
			return err
		}
		e, field, err := v.entry()
		if err != nil {
			return s.failAt(off, joinPath(path, field), "%w", err)
		}
		if _, dup := into[e.CVE]; dup {
			return s.failAt(off, joinPath(path, "cveID"), "%s is listed twice", e.CVE)
		}
		into[e.CVE] = e
	}
	return s.delim("vulnerabilities", ']')
}

// entry validates one catalog element, returning the field at fault.
func (v *kevVulnerability) entry() (KEVEntry, string, error) {
	required := []struct {
		name string
		v    *string
	}{
		{"cveID", v.CVEID}, {"vendorProject", v.VendorProject}, {"product", v.Product},
		{"vulnerabilityName", v.VulnerabilityName}, {"dateAdded", v.DateAdded},
		{"shortDescription", v.ShortDescription}, {"requiredAction", v.RequiredAction},
		{"dueDate", v.DueDate},
	}
	for _, r := range required {
		if r.v == nil {
			return KEVEntry{}, r.name, errors.New("missing")
		}
	}
	if !protocol.ValidCVE(*v.CVEID) {
		return KEVEntry{}, "cveID", fmt.Errorf("%q is not a CVE id", *v.CVEID)
	}
	e := KEVEntry{
		CVE:               *v.CVEID,
		VendorProject:     *v.VendorProject,
		Product:           *v.Product,
		VulnerabilityName: *v.VulnerabilityName,
	}
	var err error
	if e.DateAdded, err = parseDate(*v.DateAdded); err != nil {
		return KEVEntry{}, "dateAdded", err
	}
	if e.DueDate, err = parseDate(*v.DueDate); err != nil {
		return KEVEntry{}, "dueDate", err
	}
	if v.Ransomware != nil {
		switch *v.Ransomware {
		case "Known":
			e.Ransomware = true
		case "Unknown":
		default:
			return KEVEntry{}, "knownRansomwareCampaignUse", fmt.Errorf("%q is neither \"Known\" nor \"Unknown\"", *v.Ransomware)
		}
	}
	return e, "", nil
}
