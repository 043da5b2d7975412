import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { CliError, runManagementCommand } from '../src/control/management/cli.ts'

const run = promisify(execFile)
const TOKEN = 'cli-admin-token-0042'

describe('sluice consumers|products|keys|audit through the admin API', () => {
  let tg: TestGateway
  const flags = () => ['--admin-url', tg.adminUrl, '--token', TOKEN, '--actor', 'ops-cli']
  /** The command's code, in process (a spawned tsx process costs seconds on this machine; one spawn below proves the binary). */
  const cli = async (kind: string, ...args: string[]) => {
    let out = ''
    try {
      await runManagementCommand(kind as 'consumers', [...args, ...flags()], async () => { throw new Error('no config needed') }, { write: (s: string) => { out += s } })
      return { code: 0, out, err: '' }
    } catch (e) {
      if (e instanceof CliError) return { code: 1, out, err: e.message }
      throw e
    }
  }

  before(async () => {
    tg = await startTestGateway(`
admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }
backends: [ { id: m, type: mock } ]
models: [ { name: gpt-4o-mini, target: m } ]
`)
  })
  after(async () => { await tg?.close() })

  it('creates, lists, suspends, rotates and deletes, each audited under the CLI actor', { timeout: 120_000 }, async () => {
    const p = await cli('products', 'create', 'cli-product', '--models', 'gpt-4o-mini', '--policies', '[{"budget":{"usd":3,"period":"weekly"}}]')
    assert.equal(p.code, 0, p.err)
    assert.equal(JSON.parse(p.out).id, 'cli-product')
    const c = await cli('consumers', 'create', 'cli-team', '--product', 'cli-product', '--metadata', 'team=data')
    assert.equal(c.code, 0, c.err)
    assert.equal(JSON.parse(c.out).metadata.team, 'data')
    const list = await cli('consumers', 'list')
    assert.match(list.out, /^cli-team\tcli-product\tapi\tactive\tkeys 0$/m)

    // A key made over the API, rotated from the CLI.
    const made = await fetch(`${tg.adminUrl}/admin/keys`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ consumer: 'cli-team' }) })
    const { id: keyId } = await made.json() as { id: string }
    const rot = await cli('keys', 'rotate', keyId, '--grace', '5m')
    assert.equal(rot.code, 0, rot.err)
    assert.match(rot.out, new RegExp(`${keyId} keeps working until `))
    assert.match(rot.out, /^sk-sluice-/m)

    assert.equal((await cli('consumers', 'suspend', 'cli-team', '--reason', 'audit pending')).code, 0)
    assert.match((await cli('consumers', 'list')).out, /^cli-team\t.*\tsuspended\t/m)
    assert.equal((await cli('consumers', 'reinstate', 'cli-team')).code, 0)

    const bad = await cli('consumers', 'create', 'bad id')
    assert.equal(bad.code, 1)
    assert.match(bad.err, /^400: .*consumer id/)
    const badPolicies = await cli('products', 'create', 'p2', '--policies', '{oops')
    assert.equal(badPolicies.code, 1)
    assert.match(badPolicies.err, /--policies is JSON/)

    assert.equal((await cli('consumers', 'delete', 'cli-team')).code, 0)
    assert.equal((await cli('products', 'delete', 'cli-product')).code, 0)
    const audit = await cli('audit', '--limit', '20')
    const lines = audit.out.trim().split('\n').map((l) => l.split('\t'))
    assert.deepEqual(lines.map((l) => l[2]), ['product.delete', 'consumer.delete', 'consumer.reinstate', 'consumer.suspend', 'key.rotate', 'key.create', 'consumer.create', 'product.create'])
    assert.ok(lines.filter((l) => l[2] !== 'key.create').every((l) => l[1] === 'ops-cli'))
  })

  it('runs as the sluice binary, with exit status 1 and the API\'s message on a refusal', { timeout: 120_000 }, async () => {
    const ok = await run(process.execPath, ['bin/sluice.js', 'consumers', 'create', 'bin-team', ...flags()], { timeout: 90_000 })
    assert.equal(JSON.parse(ok.stdout).source, 'api')
    const bad = await run(process.execPath, ['bin/sluice.js', 'consumers', 'create', 'bin-team', ...flags()], { timeout: 90_000 }).then(() => null, (e) => e)
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /^409: A consumer "bin-team" already exists/)
  })
})
