package sandbox

import (
	cryptorand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
)

// HubSpotBurstLimit is the sandbox portal's request budget per 10 seconds: HubSpot's limit
// for private apps on Professional and Enterprise portals.
const HubSpotBurstLimit = 190

// Sandbox is a generated company served by in-process fake CRMs: its HubSpot teams by a
// fake HubSpot portal, its Pipedrive team by a fake Pipedrive account. Tick changes them
// the way a sales floor does.
type Sandbox struct {
	Company   *Company
	HubSpot   *hubspottest.Server
	Pipedrive *pipedrivetest.Server
	// HubSpotToken and PipedriveToken are the credentials the fakes accept (a private-app
	// token and an API token).
	HubSpotToken, PipedriveToken string
	// SlackChannel, when set, replaces every channel of the config file (the teams' and
	// revenue ops'), so a demo posting to a real workspace uses one channel the bot is in.
	SlackChannel string

	clock   *vendorClock
	hubspot *hubspotPortal
	pipe    *pipedriveAccount
	mu      sync.Mutex
	gen     *generator // the company's generator, for new deals and changes
}

// Start generates the company of opts, starts the fake CRMs and writes the company's
// history into them. Close it when done.
func Start(opts Options) (*Sandbox, error) {
	opts = opts.withDefaults()
	gen := newGenerator(opts)
	c := gen.generate()
	clock := &vendorClock{}
	s := &Sandbox{Company: c, clock: clock, gen: gen}
	// A fresh run of the same seed changes the same deals; its own tick randomness is
	// seeded from the company's.
	gen.rng = rand.New(rand.NewPCG(opts.Seed, 0x71c4))
	s.HubSpot = hubspottest.New(hubspottest.Options{Now: clock.Now, BurstLimit: HubSpotBurstLimit, Seed: opts.Seed + 1})
	s.HubSpotToken = s.HubSpot.AddPrivateAppToken()
	s.PipedriveToken = randomToken()
	s.Pipedrive = pipedrivetest.NewServer(pipedrivetest.Options{APIToken: s.PipedriveToken, Now: clock.Now, Seed: opts.Seed + 2})
	s.hubspot = newHubSpotPortal(s.HubSpot, clock)
	s.pipe = newPipedriveAccount(s.Pipedrive, clock)
	if err := s.hubspot.seed(c); err != nil {
		s.Close()
		return nil, fmt.Errorf("seeding the sandbox HubSpot portal: %w", err)
	}
	if err := s.pipe.seed(c); err != nil {
		s.Close()
		return nil, fmt.Errorf("seeding the sandbox Pipedrive account: %w", err)
	}
	return s, nil
}

// Close stops the fake CRMs.
func (s *Sandbox) Close() {
	if s.HubSpot != nil {
		s.HubSpot.Close()
	}
	if s.Pipedrive != nil {
		s.Pipedrive.Close()
	}
}

func randomToken() string {
	b := make([]byte, 20)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}
