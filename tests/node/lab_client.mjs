// Drive a gateway with JupyterLab's own client library, as the JupyterLab front end does.
// Usage: node lab_client.mjs <base url> <token>. Prints one JSON object of observations on stdout;
// tests/blackbox/test_jupyterlab_client.py makes the assertions.
import services from '@jupyterlab/services';

const { KernelManager, KernelSpecManager, ServerConnection, SessionManager } = services;
const [baseUrl, token] = process.argv.slice(2);
const serverSettings = ServerConnection.makeSettings({ baseUrl, token });

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function run(kernel, code, { onStdin } = {}) {
  const future = kernel.requestExecute({ code, allow_stdin: Boolean(onStdin) });
  const outputs = { stdout: '', results: [], errors: [] };
  future.onIOPub = (msg) => {
    const type = msg.header.msg_type;
    if (type === 'stream') outputs.stdout += msg.content.text;
    if (type === 'execute_result') outputs.results.push(msg.content.data['text/plain']);
    if (type === 'error') outputs.errors.push(msg.content.ename);
  };
  if (onStdin) future.onStdin = (msg) => onStdin(msg, kernel);
  const reply = await withTimeout(future.done, 30000, code);
  return { status: reply.content.status, ename: reply.content.ename, ...outputs };
}

async function connected(kernel) {
  if (kernel.connectionStatus === 'connected') return;
  await withTimeout(
    new Promise((resolve) => {
      const check = (_, status) => {
        if (status === 'connected') {
          kernel.connectionStatusChanged.disconnect(check);
          resolve();
        }
      };
      kernel.connectionStatusChanged.connect(check);
    }),
    30000,
    'websocket connection'
  );
}

const seen = {};
const specs = new KernelSpecManager({ serverSettings });
const kernels = new KernelManager({ serverSettings });
const sessions = new SessionManager({ kernelManager: kernels, serverSettings });
try {
  await withTimeout(specs.ready, 30000, 'kernelspecs');
  seen.defaultSpec = specs.specs.default;
  seen.specNames = Object.keys(specs.specs.kernelspecs).sort();

  const kernel = await kernels.startNew({ name: 'python3' });
  await connected(kernel);
  seen.protocol = kernel._ws ? kernel._ws.protocol : null;
  const info = await withTimeout(kernel.info, 30000, 'kernel_info');
  seen.infoLanguage = info.language_info.name;

  seen.print = await run(kernel, 'print(6 * 7)');
  seen.result = await run(kernel, '1 + 1');
  seen.stdin = await run(kernel, "name = input('name? ')\nprint('hello', name)", {
    onStdin: (msg, k) => k.sendInputReply({ status: 'ok', value: 'lab' }, msg.header),
  });
  seen.error = await run(kernel, '1 / 0');

  // A comm with binary buffers both ways (what ipywidgets does), through the v1 framing.
  await run(
    kernel,
    [
      'import comm',
      'def echo_target(channel, open_msg):',
      '    @channel.on_msg',
      '    def _(msg):',
      "        channel.send({'echo': msg['content']['data']}, buffers=[bytes(b)[::-1] for b in msg['buffers']])",
      "comm.get_comm_manager().register_target('echo', echo_target)",
    ].join('\n')
  );
  const channel = kernel.createComm('echo');
  const echoed = new Promise((resolve) => {
    channel.onMsg = (msg) =>
      resolve({
        data: msg.content.data,
        buffers: (msg.buffers || []).map((b) => Array.from(new Uint8Array(b.buffer ? b.buffer : b))),
      });
  });
  await withTimeout(channel.open({}).done, 30000, 'comm open');
  channel.send({ x: 1 }, undefined, [new Uint8Array([1, 2, 3]).buffer]);
  seen.comm = await withTimeout(echoed, 30000, 'comm echo');
  channel.close();

  const sleeper = kernel.requestExecute({ code: "import time\nprint('sleeping', flush=True)\ntime.sleep(60)" });
  const sleeping = new Promise((resolve) => {
    sleeper.onIOPub = (msg) => {
      if (msg.header.msg_type === 'stream') resolve();
    };
  });
  await withTimeout(sleeping, 30000, 'sleeping');
  await kernel.interrupt();
  seen.interrupted = (await withTimeout(sleeper.done, 30000, 'interrupt').catch((e) => e)).content?.ename ?? null;

  await run(kernel, 'x = 1');
  await withTimeout(kernel.restart(), 60000, 'restart');
  await connected(kernel);
  seen.afterRestart = await run(kernel, "print('x' in dir())");

  await kernels.refreshRunning();
  seen.runningBefore = [...kernels.running()].map((model) => model.id).includes(kernel.id);
  await kernel.shutdown();
  await kernels.refreshRunning();
  seen.runningAfter = [...kernels.running()].map((model) => model.id).includes(kernel.id);

  const session = await sessions.startNew({ path: 'lab.ipynb', name: 'lab.ipynb', type: 'notebook', kernel: { name: 'python3' } });
  await connected(session.kernel);
  seen.sessionPath = session.path;
  seen.sessionRun = await run(session.kernel, "print('in a session')");
  await sessions.refreshRunning();
  seen.sessionListed = [...sessions.running()].some((model) => model.id === session.id);
  await session.shutdown();
  await sessions.refreshRunning();
  seen.sessionAfter = [...sessions.running()].some((model) => model.id === session.id);
} catch (error) {
  seen.failure = String(error && error.stack ? error.stack : error);
} finally {
  sessions.dispose();
  kernels.dispose();
  specs.dispose();
}
process.stdout.write(JSON.stringify(seen) + '\n');
process.exit(0);
