import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { imageSettings, parseDockerfile, parseYamlDocuments, REPO, workerEnvironmentNames } from './helpers/deploy-files.js';
import { BASE_PATH, createNamedCluster, jsonLines, mapPath, stopProcess, TINY_MODEL_OPTIONS, until, type HostProcess, type NamedCluster } from './helpers/deploy-hosts.js';
import { netnsUnavailableReason } from './helpers/netns.js';

/**
 * docker/k8s/, without a cluster: the manifests are parsed and their wiring checked (the headless
 * Service names the pods the Job creates, the environment is the one `trainer worker` reads,
 * RANK comes from the completion index); then the Job's pods run as hosts named as the Service's
 * DNS names them, each with the environment Kubernetes would give it (the index through the
 * downward API, the token from the Secret), the image's repository and the volume as folders.
 */

const TRAINER_YAML = join(REPO, 'docker', 'k8s', 'trainer.yaml');
const PVC_YAML = join(REPO, 'docker', 'k8s', 'pvc.yaml');
const INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
const TOKEN = 'deploy-k8s-test-token-0123456789abcdef';
/** The Secret the README's `kubectl create secret generic trainer-token --from-literal=token=...` makes. */
const SECRETS: Record<string, Record<string, string>> = { 'trainer-token': { token: TOKEN } };

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
interface Container {
  image: string;
  command: string[];
  args: string[];
  env: EnvVar[];
  ports: { name: string; containerPort: number }[];
  resources: { limits: Record<string, unknown> };
  volumeMounts: { name: string; mountPath: string }[];
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  spec: Record<string, unknown>;
}

function manifests() {
  const docs = parseYamlDocuments(readFileSync(TRAINER_YAML, 'utf8')) as Manifest[];
  const service = docs.find((d) => d.kind === 'Service')!;
  const job = docs.find((d) => d.kind === 'Job')!;
  const pvc = (parseYamlDocuments(readFileSync(PVC_YAML, 'utf8')) as Manifest[])[0];
  const pod = (job.spec.template as { spec: Record<string, unknown> }).spec as {
    subdomain: string; restartPolicy: string; securityContext: { fsGroup: number }; containers: Container[];
    volumes: { name: string; persistentVolumeClaim: { claimName: string } }[];
  };
  return { docs, service, job, pvc, pod, container: pod.containers[0] };
}

/** What Kubernetes puts in the environment of the pod with completion index `index`. */
function podEnvironment(env: EnvVar[], index: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of env) {
    if (v.value !== undefined) out[v.name] = v.value;
    else if (v.valueFrom?.fieldRef?.fieldPath === INDEX_ANNOTATION) out[v.name] = String(index);
    else if (v.valueFrom?.secretKeyRef) out[v.name] = SECRETS[v.valueFrom.secretKeyRef.name][v.valueFrom.secretKeyRef.key];
    else throw new Error(`the test cannot resolve the environment variable ${v.name}`);
  }
  return out;
}

function option(args: string[], name: string): string | undefined {
  const i = args.lastIndexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

describe('docker/k8s/trainer.yaml and pvc.yaml', () => {
  it('an indexed Job whose pods find rank 0 through the headless Service, with the environment `trainer worker` reads', () => {
    const { docs, service, job, pvc, pod, container } = manifests();
    expect(docs.map((d) => d.kind)).toEqual(['Service', 'Job']);
    const env = Object.fromEntries(container.env.map((v) => [v.name, v]));

    // The Service: headless, publishing pods before they are ready, selecting the Job's pods.
    expect(service.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, selector: { 'job-name': job.metadata.name } });
    const servicePort = (service.spec.ports as { port: number }[])[0].port;
    // The Job: one pod per rank, indexed; pods named <job>-<index> under the Service's subdomain.
    const world = Number(env.WORLD_SIZE.value);
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: world, parallelism: world });
    expect(pod.subdomain).toBe(service.metadata.name);
    expect(pod.restartPolicy).toBe('Never');

    // The environment: every variable the worker reads; RANK from the index, the token from a Secret.
    for (const name of workerEnvironmentNames()) expect(env[name], name).toBeDefined();
    expect(env.RANK.valueFrom?.fieldRef?.fieldPath).toBe(INDEX_ANNOTATION);
    expect(env.MASTER_ADDR.value).toBe(`${job.metadata.name}-0.${service.metadata.name}`);
    expect(Number(env.MASTER_PORT.value)).toBe(servicePort);
    expect(container.ports).toEqual([{ name: 'coordinator', containerPort: servicePort }]);
    expect(env.LOCAL_RANK.value).toBe('0');
    expect(env.TRAINER_TOKEN.valueFrom?.secretKeyRef).toEqual({ name: 'trainer-token', key: 'token' });
    // One GPU per pod (= per worker).
    expect(container.resources.limits['nvidia.com/gpu']).toBe(1);

    // The image's pod script, from the GPU image (its repository at WORKDIR); the user it runs as can write the volume.
    const image = imageSettings(parseDockerfile(readFileSync(join(REPO, 'docker', 'Dockerfile.gpu'), 'utf8')));
    expect(container.image).toBe('trainer:gpu');
    expect(container.command).toHaveLength(1);
    accessSync(mapPath(container.command[0], { [image.workdir]: REPO }), constants.X_OK);
    expect(readFileSync(join(REPO, 'docker', 'Dockerfile.gpu'), 'utf8')).toMatch(new RegExp(`useradd --uid ${pod.securityContext.fsGroup} `));

    // A shared ReadWriteMany volume holds the run (every rank writes its checkpoint shard) and the cache.
    const mount = container.volumeMounts[0];
    expect(pod.volumes).toEqual([{ name: mount.name, persistentVolumeClaim: { claimName: pvc.metadata.name } }]);
    expect(pvc.kind).toBe('PersistentVolumeClaim');
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']);
    expect(option(container.args, '--out')!.startsWith(mount.mountPath + '/')).toBe(true);
    expect(env.TRAINER_CACHE_DIR.value!.startsWith(mount.mountPath + '/')).toBe(true);
    expect(option(container.args, '--resume')).toBe('auto');
    expect(Number(option(container.args, '--save-every'))).toBeGreaterThan(0);
  });
});

const reason = netnsUnavailableReason();
if (reason) console.warn(`skipping the Kubernetes pods on separate hosts: ${reason}`);

describe.skipIf(reason !== null)('the Job\'s pods, each on its own host', () => {
  const dirs: string[] = [];
  let cluster: NamedCluster | undefined;
  afterEach(() => {
    cluster?.destroy();
    cluster = undefined;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** Hosts named as the pods are (hostname and Service DNS name) and a starter for pod `index`. */
  function pods(count: number) {
    const { service, job, container } = manifests();
    const ws = mkdtempSync(join(tmpdir(), 'trainer-k8s-'));
    dirs.push(ws);
    const image = imageSettings(parseDockerfile(readFileSync(join(REPO, 'docker', 'Dockerfile.gpu'), 'utf8')));
    const mounts = { [image.workdir]: REPO, [container.volumeMounts[0].mountPath]: join(ws, 'volume') };
    const names = Array.from({ length: count }, (_, i) => [`${job.metadata.name}-${i}.${service.metadata.name}`, `${job.metadata.name}-${i}`]);
    cluster = createNamedCluster(names);
    const c = cluster;
    const start = (index: number, extraArgs: string[]): HostProcess => {
      const env: Record<string, string> = { PATH: BASE_PATH, HOME: ws, TRAINER_LOG_FORMAT: 'json' };
      for (const [k, v] of Object.entries({ ...image.env, ...podEnvironment(container.env, index) })) env[k] = mapPath(v, mounts);
      const argv = [...container.command, ...container.args, ...extraArgs].map((a) => mapPath(a, mounts));
      return c.start(c.hosts[index], `pod-${index}`, argv[0], argv.slice(1), env, mapPath(image.workdir, mounts));
    };
    return { c, ws, start, out: mapPath(option(container.args, '--out')!, mounts), world: Number(container.env.find((v) => v.name === 'WORLD_SIZE')!.value) };
  }

  it('4 pods started together train: rank 0 hosts the coordinator, ranks follow the completion index', async () => {
    const { c, start, out, world } = pods(4);
    expect(world).toBe(4);
    const running = Array.from({ length: world }, (_, i) => start(i, ['--steps', '6', '--save-every', '3', ...TINY_MODEL_OPTIONS]));
    const exits = await Promise.all(running.map((p) => p.exited));
    for (const [i, p] of running.entries()) expect(exits[i], p.output()).toEqual({ code: 0, signal: null });
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))).toMatchObject({ ok: true, world: 4, steps: 6 });
    for (const [i, p] of running.entries()) {
      const lines = jsonLines(p.output());
      expect(lines.some((l) => l.msg === 'coordinator listening'), `pod ${i}`).toBe(i === 0);
      expect(lines.find((l) => l.msg === 'data plane connected to all peers')?.rank).toBe(i);
      const joined = lines.find((l) => l.msg === 'joined the coordinator; waiting for the other workers');
      expect(joined?.coordinator).toBe('trainer-0.trainer:29500');
      expect(String(joined?.data).startsWith(`${p.host.ip}:`)).toBe(true);
      expect(p.output()).not.toContain(TOKEN);
    }
    for (const h of c.hosts) expect(c.processes(h), h.names[0]).toEqual([]);
  }, 180_000);

  it('rank 0 ends at once with the coordinator\'s error when the coordinator cannot start', async () => {
    const { c, start } = pods(1);
    const started = Date.now();
    const pod0 = start(0, ['--zero', '7']);
    const exit = await pod0.exited;
    expect(exit.code, pod0.output()).toBe(2);
    expect(pod0.output()).toMatch(/TRAINER_ERR_USAGE|TRAINER_ERR_ZERO_STAGE/);
    // Its worker was waiting for trainer-0.trainer:29500 (TRAINER_WAIT_TIMEOUT: 600 s); it was stopped instead.
    expect(Date.now() - started).toBeLessThan(30_000);
    for (const h of c.hosts) expect(c.processes(h)).toEqual([]);
  }, 60_000);

  it('a pod being deleted (SIGTERM) stops its coordinator and worker', async () => {
    const { c, start } = pods(1);
    const pod0 = start(0, TINY_MODEL_OPTIONS);
    // Rank 0's coordinator waits for the 3 pods that do not exist here; its worker has joined.
    await until(() => /joined the coordinator/.test(pod0.output()), 60_000, 'rank 0 to join its coordinator');
    const exit = await stopProcess(pod0, 30_000);
    expect(exit.signal, 'the pod ignored SIGTERM and was killed').toBeNull();
    expect(exit.code).not.toBe(0);
    expect(pod0.output()).toMatch(/the coordinator received SIGTERM/);
    await until(() => c.processes(c.hosts[0]).length === 0, 5000, 'the pod\'s processes to end');
  }, 90_000);
});
