using System.IO.Pipelines;
using System.Text;
using OnionDrop.Pull;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;
using OnionDrop.Tor.Control;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// The parsers that take outside input, fed seeded mutations of valid input: the sealed-format reader (what
/// a journalist opens), both ends of the pull protocol, and the tor control reply reader and event parsers.
/// Each input must be handled or refused with the parser's documented exception, quickly: no other
/// exception, no hang. Iterations: ONIONDROP_FUZZ_ITERATIONS (scripts/soak runs many more).
/// </summary>
public sealed class FuzzTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);
    private static int Seed => Environment.GetEnvironmentVariable("ONIONDROP_FUZZ_SEED") is { } s ? int.Parse(s) : Random.Shared.Next();

    private static async Task Fuzz(string target, IReadOnlyList<byte[]> corpus, int iterations, Func<byte[], Task> parse, Func<Exception, bool> clean)
    {
        var seed = Seed;
        var mutator = new Mutator(seed, corpus);
        var failures = new List<string>();
        var refused = 0;
        bool Clean(Exception e) { if (!clean(e)) return false; refused++; return true; }
        for (var i = 0; i < iterations && failures.Count < 5; i++)
        {
            var input = mutator.Next();
            if (await FuzzRun.OneAsync(() => parse(input), Clean, Limit) is { } problem)
                failures.Add($"input {FuzzRun.Keep(target, seed, i, input)}: {problem}");
        }
        TestContext.Out.WriteLine($"{target}: {iterations} inputs ({refused} refused, the rest handled), seed {seed} (ONIONDROP_FUZZ_SEED to repeat)");
        Assert.That(failures, Is.Empty, $"{target}: only clean refusals");
    }

    [Test]
    public async Task Sealed_format_reader_refuses_mutated_blobs_cleanly()
    {
        using var dir = new TempDirectory("oniondrop-fuzz-open-");
        using var key = JournalistKey.Load(Path.Combine(RepoPaths.Vectors, "journalist.key"));
        var corpus = Directory.GetFiles(RepoPaths.Vectors, "good_*.sealed").Select(File.ReadAllBytes).ToList();
        Assert.That(corpus, Is.Not.Empty);
        var output = dir.Combine("out");
        // What the unmutated vectors open to: a mutation that still opens (in bytes no MAC covers, such as
        // another recipient's stanza) must open to one of these, never to something else.
        string Fingerprint(OpenedSubmission o) => o.Reference + "|" + o.Message + "|" + string.Join(",", o.Files.Select(f => f.OriginalName + ":" + f.Sha256Hex));
        var genuine = corpus.Select(c => Fingerprint(SubmissionOpener.Open(new MemoryStream(c), key, output, "good.sealed"))).ToHashSet();
        await Fuzz("sealed", corpus, FuzzRun.Iterations(1500), input =>
        {
            using var blob = new MemoryStream(input, writable: false);
            var opened = SubmissionOpener.Open(blob, key, output, "fuzz.sealed");
            if (!genuine.Contains(Fingerprint(opened))) throw new InvalidDataException("a mutated blob opened to content no genuine blob holds");
            return Task.CompletedTask;
        }, e => e is SealedFormatException);
        // A refused blob leaves nothing behind; a few mutations (in padding a MAC does not cover, if any) may open.
        Assert.That(Directory.GetDirectories(output).Where(d => Path.GetFileName(d).StartsWith('.')), Is.Empty, "working folders left behind");
    }

    [Test]
    public async Task Tor_control_reply_reader_and_event_parsers_refuse_mutated_replies_cleanly()
    {
        string[] replies =
        [
            "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/var/lib/tor/control_auth_cookie\"\r\n250-VERSION Tor=\"0.4.8.13\"\r\n250 OK\r\n",
            "250-AUTHCHALLENGE SERVERHASH=0A1B2C SERVERNONCE=3D4E5F\r\n250 OK\r\n",
            "650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=45 TAG=requesting_descriptors SUMMARY=\"Asking for relay descriptors\"\r\n",
            "650 STATUS_CLIENT WARN BOOTSTRAP PROGRESS=10 TAG=conn_done SUMMARY=\"Connected\" WARNING=\"No route\" REASON=NOROUTE COUNT=3 RECOMMENDATION=warn\r\n",
            "650 HS_DESC UPLOADED abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv NO_AUTH $AAAA~relay UNKNOWN\r\n",
            "650+NOTICE\r\nmulti\r\n..dot-stuffed\r\n.\r\n650 OK\r\n",
            "250-ServiceID=abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv\r\n250-PrivateKey=ED25519-V3:AAAA\r\n250 OK\r\n",
            "250+status/bootstrap-phase=\r\nNOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n.\r\n250 OK\r\n",
            "552 Unrecognized key \"x\"\r\n",
            "650 WARN some \"quoted \\\" text\" \\101\r\n",
        ];
        var corpus = replies.Select(Encoding.ASCII.GetBytes).ToList();
        await Fuzz("tor-control", corpus, FuzzRun.Iterations(4000), async input =>
        {
            var pipe = new Pipe();
            await pipe.Writer.WriteAsync(input);
            await pipe.Writer.CompleteAsync();
            var reader = new ControlReplyReader(pipe.Reader);
            while (await reader.ReadAsync() is { } reply)
            {
                if (reply.IsEvent) TorEvent.Parse(reply);
                else ProtocolInfo.Parse(reply);
                foreach (var line in reply.Lines)
                {
                    ControlGrammar.ParseArguments(line.Text);
                    ControlGrammar.ParseKeyValue(line.Text);
                    if (line.Text.StartsWith("BOOTSTRAP") || line.Data?.Contains("BOOTSTRAP") == true) BootstrapStatus.ParsePhase(line.Data ?? line.Text);
                }
            }
        }, e => e is TorControlProtocolException);
    }

    [Test]
    public async Task Pull_server_answers_mutated_requests_without_failing()
    {
        using var dir = new TempDirectory("oniondrop-fuzz-pullserver-");
        using var store = SealedBlobStore.Open(dir.Combine("data"), new SealedBlobStoreOptions { KeepDaysAfterAcknowledgement = 30 });
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            await using var writer = store.BeginSubmission();
            await writer.Ciphertext.WriteAsync(new byte[1000 + i]);
            ids.Add((await writer.CommitAsync()).Id);
        }
        var corpus = new List<byte[]>
        {
            Encoding.ASCII.GetBytes($"LIST\nGET {ids[0]}\nGET {ids[1]}\nACK {ids[0]}\nQUIT\n"),
            Encoding.ASCII.GetBytes($"GET {ids[2]}\nACK {ids[2]}\nACK {ids[1]}\nLIST\n"),
            Encoding.ASCII.GetBytes("LIST\nQUIT\n"),
        };
        await Fuzz("pull-server", corpus, FuzzRun.Iterations(1500), async input =>
        {
            var server = new PullServer(store, "fuzz");
            await server.RunAsync(new MemoryStream(input, writable: false), new MemoryStream());
        }, e => e is PullProtocolException);
    }

    [Test]
    public async Task Pull_client_refuses_mutated_server_answers_cleanly()
    {
        using var dir = new TempDirectory("oniondrop-fuzz-pullclient-");
        using var store = SealedBlobStore.Open(dir.Combine("data"), new SealedBlobStoreOptions { KeepDaysAfterAcknowledgement = 30 });
        for (var i = 0; i < 3; i++)
        {
            await using var writer = store.BeginSubmission();
            await writer.Ciphertext.WriteAsync(Encoding.ASCII.GetBytes(new string('x', 500 + i) + "\n"));
            await writer.CommitAsync();
        }
        // A real exchange, recorded from the server's side.
        var toClient = new Pipe();
        var toServer = new Pipe();
        var recorded = new MemoryStream();
        var server = new PullServer(store, "recorder").RunAsync(toServer.Reader.AsStream(), new WatchedWrites(toClient.Writer.AsStream(), recorded.Write));
        await PullClient.FetchAsync(toClient.Reader.AsStream(), toServer.Writer.AsStream(), new FetchOptions { OutputDirectory = dir.Combine("recorded") });
        await toServer.Writer.CompleteAsync();
        await server.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(recorded.Length, Is.GreaterThan(1500), "the recorded exchange carries the blobs");

        var output = dir.Combine("out");
        await Fuzz("pull-client", [recorded.ToArray()], FuzzRun.Iterations(800), async input =>
        {
            await PullClient.FetchAsync(new MemoryStream(input, writable: false), Stream.Null, new FetchOptions { OutputDirectory = output });
        }, e => e is PullProtocolException);
        Assert.That(Directory.GetFiles(output).Where(f => !f.EndsWith(".sealed")), Is.Empty, "no partial file left by a refused fetch");
    }
}
