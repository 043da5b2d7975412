import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1'
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { loadConfigText } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'

// The container image definition and the Kubernetes manifests (deploy/kubernetes): every manifest is
// validated against the Kubernetes OpenAPI schemas (kubernetes-models), their references to each other
// are checked, the gateway configuration they carry is loaded by Sluice's own loader, and the Dockerfile's
// references are linted (the image is not built here: no daemon, no registry).
const ROOT = process.cwd()
const DIR = join(ROOT, 'deploy', 'kubernetes')

const MODELS: Record<string, { validate(): void } & (new (o: any) => { validate(): void })> = {
  'v1/ConfigMap': ConfigMap as any, 'v1/Secret': Secret as any, 'v1/Service': Service as any,
  'apps/v1/Deployment': Deployment as any, 'apps/v1/StatefulSet': StatefulSet as any, 'policy/v1/PodDisruptionBudget': PodDisruptionBudget as any,
}

function manifests(): Array<{ file: string; doc: any }> {
  const out: Array<{ file: string; doc: any }> = []
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name)
      if (!name.includes('.')) walk(p)
      else if (name.endsWith('.yaml')) {
        for (const d of parseAllDocuments(readFileSync(p, 'utf8'))) {
          assert.deepEqual(d.errors, [], `${name}: YAML errors`)
          out.push({ file: p.slice(DIR.length + 1), doc: d.toJS() })
        }
      }
    }
  }
  walk(DIR)
  return out
}

const all = manifests()
const byKind = (kind: string, name?: string) => all.map((m) => m.doc).filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name))
const one = (kind: string, name: string) => {
  const found = byKind(kind, name)
  assert.equal(found.length, 1, `one ${kind} ${name}`)
  return found[0]
}

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  it('every document is a known kind that validates against the Kubernetes schemas; a broken one does not', () => {
    assert.ok(all.length >= 9, `${all.length} documents`)
    for (const { file, doc } of all) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`]
      assert.ok(Model, `${file}: ${doc.apiVersion} ${doc.kind} has no schema here`)
      assert.doesNotThrow(() => new Model(doc).validate(), `${file}: ${doc.kind} ${doc.metadata?.name}`)
    }
    // The check has teeth: the same Deployment with a wrong type or without containers is refused.
    const d = structuredClone(one('Deployment', 'sluice'))
    assert.throws(() => new Deployment({ ...d, spec: { ...d.spec, replicas: 'three' } }).validate(), /replicas/)
    assert.throws(() => new Deployment({ ...d, spec: { ...d.spec, template: { ...d.spec.template, spec: {} } } }).validate(), /containers/)
  })

  it('the Deployment runs several non-root replicas with probes on /readyz and /healthz, resources, and its secrets by reference', () => {
    const d = one('Deployment', 'sluice')
    assert.ok(d.spec.replicas >= 2)
    const pod = d.spec.template.spec
    const c = pod.containers[0]
    assert.equal(pod.securityContext.runAsNonRoot, true)
    assert.equal(c.securityContext.allowPrivilegeEscalation, false)
    assert.deepEqual(c.args, ['start', '--config', '/etc/sluice/sluice.yaml'])
    const ports = Object.fromEntries(c.ports.map((p: any) => [p.name, p.containerPort]))
    assert.deepEqual(ports, { http: 8080, admin: 8081 })
    assert.deepEqual([c.readinessProbe.httpGet.path, c.readinessProbe.httpGet.port], ['/readyz', 'http'])
    assert.deepEqual([c.livenessProbe.httpGet.path, c.livenessProbe.httpGet.port], ['/healthz', 'http'])
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory)
    // The pod is given time to drain: more than listen.shutdownGrace (15 s) plus the preStop pause.
    assert.ok(pod.terminationGracePeriodSeconds > 15 + 5)
    // Selector, labels and Services agree; Service target ports are the container's named ports.
    for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) assert.equal(d.spec.template.metadata.labels[k], v)
    for (const s of byKind('Service').filter((x) => x.metadata.name.startsWith('sluice') && !/redis|postgres/.test(x.metadata.name))) {
      for (const [k, v] of Object.entries(s.spec.selector)) assert.equal(d.spec.template.metadata.labels[k], v, `${s.metadata.name} selects the pods`)
      for (const p of s.spec.ports) assert.ok(p.targetPort in ports, `${s.metadata.name} targets a named container port`)
    }
    // The config volume is the ConfigMap; every secretKeyRef names a key of the Secret the example shows.
    const cfgVolume = pod.volumes.find((v: any) => v.name === c.volumeMounts.find((m: any) => m.mountPath === '/etc/sluice').name)
    assert.equal(cfgVolume.configMap.name, 'sluice-config')
    const secret = one('Secret', 'sluice-secrets')
    const refs = [...all.map((m) => m.doc).filter((x) => x.kind === 'Deployment' || x.kind === 'StatefulSet')
      .flatMap((x) => x.spec.template.spec.containers.flatMap((cc: any) => cc.env ?? []))
      .filter((e: any) => e.valueFrom?.secretKeyRef)]
    assert.ok(refs.length >= 5)
    for (const e of refs) {
      assert.equal(e.valueFrom.secretKeyRef.name, 'sluice-secrets')
      assert.ok(e.valueFrom.secretKeyRef.key in secret.stringData, `secret key ${e.valueFrom.secretKeyRef.key}`)
    }
    assert.ok(!JSON.stringify(d).match(/sk-[A-Za-z0-9]{20,}/), 'no key in the Deployment itself')
  })

  it("the ConfigMap's sluice.yaml loads in Sluice with the Deployment's environment: Redis and PostgreSQL, workers, no literal secret", () => {
    const text = one('ConfigMap', 'sluice-config').data['sluice.yaml'] as string
    const env = one('Deployment', 'sluice').spec.template.spec.containers[0].env as Array<{ name: string }>
    const given = new Set(env.map((e) => e.name))
    const referenced = [...text.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]!)
    assert.ok(referenced.length >= 5)
    for (const name of referenced) assert.ok(given.has(name), `\${${name}} is set by the Deployment`)
    const values = Object.fromEntries(referenced.map((n) => [n, n.endsWith('_URL') ? (n === 'REDIS_URL' ? 'redis://sluice-redis:6379' : 'postgres://sluice:pw@sluice-postgres:5432/sluice') : `value-of-${n.toLowerCase()}-0123456789`]))
    const res = loadConfigText(text, { env: values, registry: builtinPolicies() })
    assert.ok(res.ok, res.ok ? '' : JSON.stringify(res.problems))
    assert.equal(res.config.store.type, 'redis')
    assert.equal(res.config.ledger.type, 'postgres')
    assert.ok(res.config.listen.workers >= 2)
    assert.equal(res.config.listen.port, 8080)
    assert.equal(res.config.admin.port, 8081)
    // Without the environment it is refused, naming what is missing (nothing is baked in).
    const bare = loadConfigText(text, { env: {}, registry: builtinPolicies() })
    assert.equal(bare.ok, false)
    assert.ok(!bare.ok && bare.problems.some((p) => /SLUICE_ADMIN_TOKEN is not set/.test(p.message)))
  })

  it('Redis and PostgreSQL are provided as optional in-cluster dependencies behind the Secret URLs', () => {
    const secret = one('Secret', 'sluice-secrets')
    const redis = one('Service', 'sluice-redis')
    const pg = one('Service', 'sluice-postgres')
    assert.match(secret.stringData['redis-url'], new RegExp(`^redis://${redis.metadata.name}:${redis.spec.ports[0].port}$`))
    assert.match(secret.stringData['database-url'], new RegExp(`@${pg.metadata.name}:${pg.spec.ports[0].port}/`))
    assert.equal(one('StatefulSet', 'sluice-postgres').spec.volumeClaimTemplates.length, 1)
  })
})

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ')
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  const stages = lines.filter((l) => /^FROM /i.test(l)).map((l) => /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(l)!)

  it('is multi-stage on node:20-slim, installs production dependencies with npm ci --omit=dev, runs as a non-root user', () => {
    assert.ok(stages.length >= 2)
    for (const s of stages) assert.equal(s[1], 'node:20-slim')
    assert.ok(lines.some((l) => /^RUN .*npm ci --omit=dev/.test(l)))
    const last = lines.slice(lines.lastIndexOf(lines.filter((l) => /^FROM /i.test(l)).at(-1)!))
    const user = last.filter((l) => /^USER /.test(l)).at(-1)
    assert.ok(user && !/^USER\s+(root|0)\b/.test(user), `final stage user: ${user}`)
    assert.match(last.find((l) => /^HEALTHCHECK /.test(l)) ?? '', /\/healthz/)
    // The runtime caps glibc's malloc arenas (the footprint measured in BENCHMARKS.md).
    assert.ok(last.some((l) => /^ENV MALLOC_ARENA_MAX=2$/.test(l)), 'the runtime stage sets MALLOC_ARENA_MAX=2')
  })

  it('copies only files that exist and stages defined before, and its entry command is the CLI', () => {
    const names = new Set<string>()
    for (const l of lines) {
      const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(l)
      if (from) { if (from[1]) names.add(from[1]); continue }
      if (!/^COPY /.test(l)) continue
      const parts = l.split(/\s+/).slice(1)
      const stage = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length)
      const paths = parts.filter((p) => !p.startsWith('--'))
      const sources = paths.slice(0, -1)
      if (stage) { assert.ok(names.has(stage), `stage ${stage} is defined before: ${l}`); continue }
      for (const src of sources) assert.ok(existsSync(join(ROOT, src)), `COPY source ${src} exists`)
    }
    const entry = JSON.parse(/^ENTRYPOINT\s+(\[.*\])$/m.exec(lines.join('\n'))![1]!) as string[]
    const cmd = JSON.parse(/^CMD\s+(\[.*\])$/m.exec(lines.join('\n'))![1]!) as string[]
    assert.equal(entry[0], 'node')
    assert.ok(existsSync(join(ROOT, entry[1]!)), `${entry[1]} exists`)
    assert.equal(cmd[0], 'start')
    assert.match(readFileSync(join(ROOT, 'src', 'cli.ts'), 'utf8'), /case 'start': return start\(rest\)/)
    // The build it runs is made in the image (npm run build), the ports it exposes are the manifests'.
    assert.ok(lines.some((l) => /^RUN npm run build/.test(l)))
    assert.match(lines.find((l) => /^EXPOSE /.test(l)) ?? '', /\b8080\b.*\b8081\b/)
    // node_modules and local state never enter the build context.
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')
    for (const p of ['node_modules', 'dist', '.sluice', '.git']) assert.ok(ignore.includes(p), `.dockerignore lists ${p}`)
  })
})
