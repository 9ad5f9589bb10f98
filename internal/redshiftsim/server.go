package redshiftsim

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
)

// Config describes the cluster the stand-in plays and where its pieces live.
type Config struct {
	PostgresDSN         string // superuser DSN of the database behind the cluster
	AWSEndpoint         string // moto URL
	Region              string
	ClusterIdentifier   string
	ClusterAccount      string      // account id of the cluster
	ClusterAdminRoleARN string      // role assumed (moto STS) to call DescribeClusters / IAM in the cluster account
	Logger              *zap.Logger // may be nil
}

// Server is a Redshift stand-in speaking the PostgreSQL wire protocol.
type Server struct {
	cfg   Config
	log   *zap.Logger
	pgCfg *pgconn.Config
	aws   *awsWorld

	ctx    context.Context // cancelled by Close; parent of every session's work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	cancels atomic.Int64 // CancelRequests that matched a session

	mu       sync.Mutex
	ln       net.Listener
	closed   bool
	conns    map[net.Conn]struct{}
	sessions map[uint32]*session // by the process id given to the client
	nextPID  uint32
}

// New checks cfg and returns a server ready to Serve.
func New(cfg Config) (*Server, error) {
	for name, v := range map[string]string{
		"PostgresDSN": cfg.PostgresDSN, "AWSEndpoint": cfg.AWSEndpoint, "Region": cfg.Region,
		"ClusterIdentifier": cfg.ClusterIdentifier, "ClusterAccount": cfg.ClusterAccount,
		"ClusterAdminRoleARN": cfg.ClusterAdminRoleARN,
	} {
		if v == "" {
			return nil, fmt.Errorf("redshiftsim: Config.%s is required", name)
		}
	}
	pgCfg, err := pgconn.ParseConfig(cfg.PostgresDSN)
	if err != nil {
		// The DSN holds the superuser password: do not echo it.
		return nil, errors.New("redshiftsim: Config.PostgresDSN cannot be parsed as a PostgreSQL connection string")
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:      cfg,
		log:      log,
		pgCfg:    pgCfg,
		aws:      newAWSWorld(cfg),
		ctx:      ctx,
		cancel:   cancel,
		conns:    map[net.Conn]struct{}{},
		sessions: map[uint32]*session{},
		nextPID:  randomUint32()&0x3fffffff | 1,
	}, nil
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("redshiftsim: Serve called twice")
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("redshift stand-in listening", zap.String("event", "redshiftsim.listening"),
		zap.String("addr", ln.Addr().String()), zap.String("cluster", s.cfg.ClusterIdentifier))
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("redshiftsim: accept: %w", err)
		}
		if !s.track(conn) {
			conn.Close()
			return nil
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			s.handle(conn)
		}()
	}
}

// Addr is the listening address (host:port), or "" before Serve.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops accepting, closes every session and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	for _, ss := range s.sessions {
		ss.closeBackend()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// register gives a session the process id and secret its client uses for
// CancelRequest; it returns false when the server is closing.
func (s *Server) register(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	for {
		s.nextPID++
		if s.nextPID == 0 || s.nextPID > 0x7fffffff {
			s.nextPID = 1
		}
		if _, taken := s.sessions[s.nextPID]; !taken {
			break
		}
	}
	ss.pid = s.nextPID
	ss.secret = make([]byte, 4)
	binary.BigEndian.PutUint32(ss.secret, randomUint32())
	s.sessions[ss.pid] = ss
	return true
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ss.pid] == ss {
		delete(s.sessions, ss.pid)
	}
}

// cancelRequest handles a client's CancelRequest: it cancels what the
// stand-in is doing for that session and forwards the cancel to PostgreSQL.
func (s *Server) cancelRequest(m *pgproto3.CancelRequest) {
	s.mu.Lock()
	ss := s.sessions[m.ProcessID]
	s.mu.Unlock()
	if ss == nil || subtle.ConstantTimeCompare(ss.secret, m.SecretKey) != 1 {
		return
	}
	s.cancels.Add(1)
	s.log.Debug("cancel request", zap.String("event", "redshiftsim.cancel"), zap.Uint32("pid", m.ProcessID))
	ss.cancel(s.ctx)
}

// Cancels returns how many CancelRequests matched a session so far: tests use it to see
// that a client's cancel reached the server.
func (s *Server) Cancels() int64 { return s.cancels.Load() }

func randomUint32() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return binary.BigEndian.Uint32(b[:])
}
