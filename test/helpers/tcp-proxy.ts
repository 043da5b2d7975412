import net from 'node:net'

/** A reply to lose: after the client sends `request`, server bytes are swallowed up to one containing `reply`. */
export interface ReplyCut {
  readonly request: string
  readonly reply: string
  /** Refuse new connections after a cut, until `restore()` (so nothing is retried before the test looks). */
  readonly refuseAfter?: boolean
  /** Cut only the first matching exchange (default), or every one. */
  readonly every?: boolean
}

/**
 * A TCP relay to a real server that a test can cut and restore, to simulate an outage of a shared
 * service (Redis) without touching the service itself, which other tests use concurrently. It can also
 * lose one reply: the request reaches the server (which acts on it, e.g. commits), the answer never
 * reaches the client, and the connection drops (a cut between commit and acknowledgement).
 */
export class TcpProxy {
  private server: net.Server | null = null
  private readonly sockets = new Set<net.Socket>()
  private cut: ReplyCut | null = null
  private refusing = false
  port = 0
  /** Replies lost so far. */
  cuts = 0

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {}

  async start(): Promise<number> {
    const server = net.createServer((client) => {
      if (this.refusing) { client.destroy(); return }
      const upstream = net.connect(this.targetPort, this.targetHost)
      for (const s of [client, upstream]) {
        this.sockets.add(s)
        s.on('close', () => this.sockets.delete(s))
        s.on('error', () => { client.destroy(); upstream.destroy() })
      }
      let armed = false
      const relay = (from: net.Socket, to: net.Socket) => (d: Buffer) => {
        if (!to.write(d)) { from.pause(); to.once('drain', () => from.resume()) }
      }
      const toServer = relay(client, upstream)
      const toClient = relay(upstream, client)
      client.on('data', (d: Buffer) => {
        if (this.cut && !armed && d.includes(this.cut.request)) armed = true
        toServer(d)
      })
      upstream.on('data', (d: Buffer) => {
        if (!armed || !this.cut) return toClient(d)
        // The server has answered the request: this answer is lost, and the connection with it.
        if (d.includes(this.cut.reply)) {
          this.cuts++
          if (this.cut.refuseAfter) this.refusing = true
          if (!this.cut.every) this.cut = null
          armed = false
          client.destroy()
          upstream.destroy()
        }
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    this.server = server
    this.port = (server.address() as net.AddressInfo).port
    return this.port
  }

  /** Loses the reply to the next request matching `cut` (or every one, with `every`). */
  loseReply(cut: ReplyCut | null): void {
    this.cut = cut
  }

  /** Accepts connections again after a cut that refused them. */
  restore(): void {
    this.refusing = false
  }

  /** Stops accepting and cuts every open connection: the service looks gone. */
  async stop(): Promise<void> {
    const server = this.server
    this.server = null
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
