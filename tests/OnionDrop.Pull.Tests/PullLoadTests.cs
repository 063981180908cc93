using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using OnionDrop.Sealing;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// Many pull sessions at once against a real daemon (`oniondrop serve`), each on pull.sock as the relay would
/// connect: the source's side (the form, uploads) must not wait for them.
/// </summary>
[Category("EndToEnd")]
public class PullLoadTests
{
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");

    [SetUp] public void SetUp() => (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    /// <summary>A real daemon that deletes a blob once every one of <paramref name="names"/> has acknowledged it.</summary>
    private Task<DaemonProcess> StartDeletingAfterAllAsync(string[] names) =>
        DaemonProcess.StartAsync(DataDir, _key.PublicKey.ToString(), settings: new Dictionary<string, object>
        {
            ["Retention"] = new Dictionary<string, object> { ["DeleteAfter"] = "All", ["Journalists"] = names },
        });

    /// <summary>One session on pull.sock: AS name, LIST, then each item acknowledged alone (one catalog transaction each).</summary>
    private static async Task<int> AcknowledgeOneByOneAsync(string socketPath, string name)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        for (var attempt = 0; ; attempt++)
        {
            try { await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath)); break; }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock && attempt < 200)
            {
                await Task.Delay(50); // a burst overflows pull.sock's backlog; the relay retries too
            }
        }
        await using var stream = new NetworkStream(socket);
        var reader = new ProtocolReader(stream);
        async Task Send(string line) => await stream.WriteAsync(Encoding.ASCII.GetBytes(line + "\n"));
        await Send($"AS {name}");
        Assert.That(await reader.ReadLineAsync(), Is.EqualTo(PullProtocol.Greeting));
        await Send("LIST");
        var count = int.Parse((await reader.ReadLineAsync())!.Split(' ')[1]);
        var ids = new List<string>();
        for (var i = 0; i < count; i++) ids.Add((await reader.ReadLineAsync())!.Split(' ')[1]);
        var acked = 0;
        foreach (var id in ids)
        {
            await Send($"ACK {id}");
            if (await reader.ReadLineAsync() == $"ACKED {id}") acked++;
        }
        await Send("QUIT");
        await reader.ReadLineAsync();
        return acked;
    }

    /// <summary>
    /// Each ACK batch is a catalog transaction with its fsyncs, taken in turn. Sessions that waited for that turn each
    /// blocked a pool thread: with 100 sessions acknowledging, GET / took 376 ms (median; 621 max) and uploads 344 ms.
    /// Waiting without a thread, the form answers in 2-4 ms (median) meanwhile.
    /// </summary>
    [Test]
    public async Task A_hundred_sessions_acknowledging_at_once_do_not_keep_the_form_waiting()
    {
        const int Sessions = 100, Blobs = 20;
        var names = Enumerable.Range(0, Sessions).Select(i => $"j{i}").ToArray();
        // All: every session's acknowledgements are recorded (none is "not found" because another deleted it first).
        await using var daemon = await StartDeletingAfterAllAsync(names);
        using var client = new UploadClient(daemon.BaseAddress);
        for (var i = 0; i < Blobs; i++)
            Assert.That((await client.SendAsync(new SeededUpload($"s{i}", i, 1000), UploadPace.Fast)).Receipted);

        var socketPath = Path.Combine(DataDir, PullSocketListener.FileName);
        var pulls = Task.WhenAll(names.Select(n => Task.Run(() => AcknowledgeOneByOneAsync(socketPath, n))));
        var formTimes = new List<double>();
        var uploads = 0;
        using var http = new HttpClient { BaseAddress = daemon.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
        while (!pulls.IsCompleted)
        {
            var clock = Stopwatch.StartNew();
            using (var r = await http.GetAsync("/")) r.EnsureSuccessStatusCode();
            formTimes.Add(clock.Elapsed.TotalMilliseconds);
            var upload = await client.SendAsync(new SeededUpload($"u{uploads}", 1000 + uploads++, 1000), UploadPace.Fast);
            Assert.That(upload.Receipted, upload.ToString());
            await Task.Delay(50);
        }
        var acked = await pulls;
        var median = formTimes.Order().ElementAt(formTimes.Count / 2);
        TestContext.Out.WriteLine($"GET / during the pulls: median {median:0} ms, max {formTimes.Max():0} ms, {formTimes.Count} requests; {uploads} uploads");

        Assert.That(acked, Has.All.GreaterThanOrEqualTo(Blobs), "every session acknowledged every blob it listed");
        Assert.That(median, Is.LessThan(100), "GET / waited for the pull sessions");
    }

    /// <summary>
    /// LiteDB's rebuild (`oniondrop compact`, and retention after it deletes) closes its engine and opens it again:
    /// each fetch running meanwhile had its LIST refused ("the catalog failed: Cannot access a disposed object"), and
    /// the daemon reopened its catalog as after a full disk. Real fetches through real relays, compactions back to back.
    /// </summary>
    [Test]
    public async Task Fetches_running_while_the_catalog_is_compacted_again_and_again_each_get_everything_once()
    {
        const int Fetchers = 4, Blobs = 300;
        var names = Enumerable.Range(0, Fetchers).Select(i => $"j{i}").ToArray();
        await using var daemon = await StartDeletingAfterAllAsync(names);
        using var client = new UploadClient(daemon.BaseAddress);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async k =>
        {
            for (var i = k; i < Blobs; i += 8)
                Assert.That((await client.SendAsync(new SeededUpload($"s{i}", i, 2000), UploadPace.Fast)).Receipted);
        }));

        var socketPath = Path.Combine(DataDir, PullSocketListener.FileName);
        var fetches = Task.WhenAll(names.Select(n => Oniondrop.RunAsync(["fetch", "-o", _temp.Combine("in-" + n), "--via",
            $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as {n}"], TimeSpan.FromMinutes(3))));
        var compactions = 0;
        var failures = new List<string>();
        while (!fetches.IsCompleted)
        {
            try { await CompactRequest.SendAsync(socketPath); compactions++; }
            catch (IOException e) { failures.Add(e.Message); }
        }
        var results = await fetches;
        TestContext.Out.WriteLine($"{compactions} compactions during the fetches");

        Assert.That(results.Where(r => r.ExitCode != 0).Select(r => r.ToString()), Is.Empty, "every fetch succeeds");
        Assert.That(compactions, Is.GreaterThan(0));
        Assert.That(failures, Is.Empty, "every compaction succeeds");
        foreach (var n in names)
            Assert.That(Directory.GetFiles(_temp.Combine("in-" + n)), Has.Length.EqualTo(Blobs), $"{n} holds every blob, as .sealed only");
        Assert.That(daemon.Output, Does.Not.Contain("catalog reopened").And.Not.Contain("store unreadable"));
    }
}
