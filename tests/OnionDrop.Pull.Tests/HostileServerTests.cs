using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// A malicious or compromised server answering fetch: whatever it says, nothing is written outside the fetch
/// folder or beyond what was listed, its text never reaches the terminal raw, memory stays bounded, and a failure
/// is a <see cref="PullProtocolException"/> (one line), never another exception.
/// </summary>
public class HostileServerTests
{
    private const string Id1 = "AAAA-BBBB-CCCC-DDDD-EEEE", Id2 = "AAAA-BBBB-CCCC-DDDD-EEE1";
    private static readonly byte[] Blob = "a sealed blob, say"u8.ToArray();
    private static readonly string BlobSha = Convert.ToHexStringLower(SHA256.HashData(Blob));

    private TempDirectory _temp = null!;
    private string Received => _temp.Combine("received");

    [SetUp] public void SetUp() => _temp = new TempDirectory();
    [TearDown] public void TearDown() => _temp.Dispose();

    /// <summary>
    /// A scripted server: <paramref name="opening"/> is sent at once (greeting, list); then each GET is answered by
    /// <paramref name="get"/>'s bytes, each ACK acknowledged, QUIT answered BYE. Returns the result and every request.
    /// </summary>
    /// <param name="hangUp">close the connection right after <paramref name="opening"/></param>
    /// <param name="noBye">close the connection at QUIT without answering BYE (a server killed then)</param>
    private static async Task<(FetchResult Result, List<string> Requests)> FetchFromAsync(string opening, Func<string, byte[]> get, FetchOptions options, bool hangUp = false,
        bool noBye = false)
    {
        var toServer = new Pipe();
        var toClient = new Pipe();
        var requests = new List<string>();
        var server = Task.Run(async () =>
        {
            await using var output = toClient.Writer.AsStream();
            using var input = new StreamReader(toServer.Reader.AsStream(), Encoding.ASCII);
            try
            {
                await output.WriteAsync(Encoding.Latin1.GetBytes(opening));
                await output.FlushAsync();
                while (!hangUp && await input.ReadLineAsync() is { } line)
                {
                    lock (requests) requests.Add(line);
                    var words = line.Split(' ');
                    if (noBye && words[0] == "QUIT") break;
                    var answer = words[0] switch
                    {
                        "GET" => get(words[1]),
                        "ACK" => Encoding.ASCII.GetBytes($"ACKED {words[1]}\n"),
                        "QUIT" => "BYE\n"u8.ToArray(),
                        _ => [],
                    };
                    await output.WriteAsync(answer);
                    await output.FlushAsync();
                    if (words[0] == "QUIT") break;
                }
            }
            catch (IOException) { }   // the client hung up on us
        });
        try { return (await PullClient.FetchAsync(toClient.Reader.AsStream(), toServer.Writer.AsStream(), options), requests); }
        finally
        {
            await toServer.Writer.CompleteAsync();
            await toClient.Reader.CompleteAsync();
            await server;
        }
    }

    private FetchOptions Options => new() { OutputDirectory = Received };

    /// <summary>
    /// The server killed after it acknowledged everything, before its BYE (seen with kill -9 of the daemon during a
    /// fetch): a cut like any other, said as one ("connection lost ... run fetch again"), not as a protocol fault
    /// ("expected BYE, got: (end of stream)"), which sounded like a broken server.
    /// </summary>
    [Test]
    public async Task A_server_gone_before_its_BYE_is_a_lost_connection()
    {
        var e = await Assert.ThrowsAsync<PullConnectionLostException>(() => FetchFromAsync(
            $"ONIONDROP-PULL 1\nWAITING 1 {Blob.Length}\nITEM {Id1} {Blob.Length} {BlobSha}\n",
            _ => Frame(Id1, Blob.Length, BlobSha, Blob), Options, noBye: true));
        Assert.That(e!.Message, Does.Contain("BYE"));
        Assert.That(File.ReadAllBytes(Path.Combine(Received, Id1 + ".sealed")), Is.EqualTo(Blob), "what was acknowledged is here");
        AssertNothingButSealedIn();
    }

    private static byte[] Frame(string id, long size, string sha, byte[] payload) => [.. Encoding.ASCII.GetBytes($"BLOB {id} {size} {sha}\n"), .. payload];

    private static void AssertPrintable(string text) =>
        Assert.That(text.Where(c => c < ' ' || c >= (char)127), Is.Empty, "printable ASCII only: " + text.Replace("\u001b", "<ESC>"));

    private void AssertNothingButSealedIn()
    {
        var left = Directory.Exists(Received) ? Directory.GetFileSystemEntries(Received) : [];
        Assert.That(left.Where(p => !p.EndsWith(".sealed")), Is.Empty);
    }

    [Test]
    public async Task A_greeting_with_escape_sequences_is_shown_escaped()
    {
        var refused = await Assert.ThrowsAsync<PullProtocolException>(() => FetchFromAsync("ONIONDROP-PULL 2\u001b]0;owned\u0007\u001b[2J\n", _ => [], Options));
        AssertPrintable(refused!.Message);
        Assert.That(refused.Message, Does.Contain("server speaks ONIONDROP-PULL 2"));
    }

    [TestCase("a line that never ends")]
    [TestCase("binary junk")]
    public async Task A_greeting_that_is_not_one_is_refused_in_one_printable_line(string what)
    {
        var junk = what == "binary junk" ? "\u0000\u00ff\u001b[2J\u0007\u009b\r\n" : new string('A', 5000);
        var refused = await Assert.ThrowsAsync<PullProtocolException>(() => FetchFromAsync(junk, _ => [], Options));
        AssertPrintable(refused!.Message);
        Assert.That(refused.Message, Does.StartWith(what == "binary junk" ? "not an OnionDrop pull server" : "line longer than 1024 bytes"));
    }

    [Test]
    public async Task A_listed_hash_that_is_not_hex_is_refused_and_never_shown_raw()
    {
        var sha = "\u001b]0;owned\u0007\u001b[31m".PadRight(64, 'a');
        var refused = await Assert.ThrowsAsync<PullProtocolException>(() => FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 1 {Blob.Length}\nITEM {Id1} {Blob.Length} {sha}\n",
            id => Frame(id, Blob.Length, BlobSha, Blob), Options));
        AssertPrintable(refused!.Message);
        Assert.That(refused.Message, Does.StartWith("bad ITEM line"));
        AssertNothingButSealedIn();
    }

    [Test]
    public async Task A_blob_larger_than_listed_is_refused_before_a_byte_is_written()
    {
        // Listed as 18 bytes, sent as 4 MiB: the disk was checked for 18.
        var big = new byte[4 << 20];
        var refused = await Assert.ThrowsAsync<PullProtocolException>(() => FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 1 {Blob.Length}\nITEM {Id1} {Blob.Length} {BlobSha}\n",
            id => Frame(id, big.Length, Convert.ToHexStringLower(SHA256.HashData(big)), big), Options));
        Assert.That(refused!.Message, Does.Contain($"sends {big.Length} bytes for {Id1}, listed with {Blob.Length}"));
        Assert.That(Directory.GetFileSystemEntries(Received), Is.Empty);
    }

    [Test]
    public async Task A_count_of_two_billion_costs_no_memory_up_front()
    {
        // The list's count once sized a List of that many entries: "Array dimensions exceeded supported range".
        var cut = await Assert.ThrowsAsync<PullConnectionLostException>(() => FetchFromAsync($"ONIONDROP-PULL 1\nWAITING {int.MaxValue} 0\nITEM {Id1} 1 {BlobSha}\n", _ => [], Options, hangUp: true));
        Assert.That(cut!.Message, Does.Contain("connection closed in the list"));
    }

    [Test]
    public async Task A_list_longer_than_one_run_takes_is_fetched_in_part_and_the_rest_left_for_the_next()
    {
        var list = new StringBuilder($"ONIONDROP-PULL 1\nWAITING 5 {5 * Blob.Length}\n");
        var ids = Enumerable.Range(0, 5).Select(i => $"AAAA-BBBB-CCCC-DDDD-EEE{i}").ToArray();
        foreach (var id in ids) list.Append($"ITEM {id} {Blob.Length} {BlobSha}\n");
        var (result, requests) = await FetchFromAsync(list.ToString(), id => Frame(id, Blob.Length, BlobSha, Blob), new FetchOptions { OutputDirectory = Received, MaxListed = 2 });
        Assert.That((result.Received, result.Acknowledged, result.NotListed), Is.EqualTo((2, 2, 3)));
        Assert.That(requests.Where(r => r.StartsWith("GET ")), Is.EqualTo(new[] { "GET " + ids[0], "GET " + ids[1] }));
    }

    [Test]
    public async Task Sizes_that_add_up_past_the_largest_number_leave_those_blobs_on_the_server()
    {
        var (result, requests) = await FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 2 0\nITEM {Id1} {long.MaxValue} {BlobSha}\nITEM {Id2} {long.MaxValue} {BlobSha}\n", _ => [], Options);
        Assert.That(requests.Where(r => r.StartsWith("GET ")), Is.Empty);
        Assert.That((result.NoRoom, result.NoRoomBytes, result.Problems.Count), Is.EqualTo((2, long.MaxValue, 0)), "both left on the server, their sum saturated");
    }

    [Test]
    public async Task A_blob_the_disk_has_no_room_for_is_not_asked_for()
    {
        // A terabyte: GET it and the server could fill the journalist's disk up to the last byte.
        const long terabyte = 1L << 40;
        var (result, requests) = await FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 2 0\nITEM {Id1} {terabyte} {BlobSha}\nITEM {Id2} {Blob.Length} {BlobSha}\n",
            id => Frame(id, Blob.Length, BlobSha, Blob), Options);
        Assert.That(requests.Where(r => r.StartsWith("GET ")), Is.EqualTo(new[] { "GET " + Id2 }), "the small one still comes");
        Assert.That((result.NoRoom, result.NoRoomBytes, result.Problems.Count), Is.EqualTo((1, terabyte, 0)), "left on the server, said once for all such");
        Assert.That(result.Received, Is.EqualTo(1));
        Assert.That(requests, Has.No.Member("ACK " + Id1));
    }

    [Test]
    public async Task A_server_that_stops_sending_mid_blob_is_given_up_after_the_idle_limit_and_leaves_no_partial_file()
    {
        // The connection stays open and nothing more comes (a hung relay, a stalled circuit): fetch used to wait for ever.
        var options = new FetchOptions { OutputDirectory = Received, IdleTimeout = TimeSpan.FromMilliseconds(300) };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var fetch = FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 2 0\nITEM {Id1} {Blob.Length} {BlobSha}\nITEM {Id2} {Blob.Length} {BlobSha}\n",
            id => id == Id1 ? Frame(id, Blob.Length, BlobSha, Blob) : Frame(id, Blob.Length, BlobSha, Blob)[..^5], options);
        var stalled = await Assert.ThrowsAsync<PullIdleException>(() => fetch.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.That(stalled!.Limit, Is.EqualTo(options.IdleTimeout));
        Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(300)));
        Assert.That(Directory.GetFileSystemEntries(Received).Select(Path.GetFileName), Is.EqualTo(new[] { Id1 + ".sealed" }),
            "the whole blob kept (not acknowledged: fetch was waiting for the other), the half one's .partial removed");
    }

    [Test]
    public async Task Time_fetch_spends_on_its_own_between_reads_does_not_count_as_the_servers_silence()
    {
        // fetch --open opens each blob before acknowledging it, for as long as that takes: the server is not waited for then.
        var options = new FetchOptions { OutputDirectory = Received, IdleTimeout = TimeSpan.FromMilliseconds(200), Stored = (_, ct) => Task.Delay(600, ct) };
        var (result, _) = await FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 2 0\nITEM {Id1} {Blob.Length} {BlobSha}\nITEM {Id2} {Blob.Length} {BlobSha}\n",
            id => Frame(id, Blob.Length, BlobSha, Blob), options);
        Assert.That((result.Received, result.Acknowledged, result.Problems.Count), Is.EqualTo((2, 2, 0)));
    }

    [Test]
    public async Task A_list_naming_an_id_twice_is_refused_in_one_line()
    {
        var refused = await Assert.ThrowsAsync<PullProtocolException>(() => FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 2 0\nITEM {Id1} 1 {BlobSha}\nITEM {Id1} 1 {BlobSha}\n", _ => [], Options));
        Assert.That(refused!.Message, Does.Contain($"names {Id1} twice"));
    }

    [TestCase("../x")]
    [TestCase("/etc/x")]
    [TestCase("AAAA-BBBB-CCCC-DDDD-EEEE.sealed")]
    [TestCase("AAAA-BBBB-CCCC-DDDD-EE/E")]
    [TestCase("AAAA-BBBB-CCCC-DDDD-EEE\0")]
    [TestCase("aaaa-bbbb-cccc-dddd-eeee")]
    public async Task Ids_that_are_not_ids_are_refused_before_any_path_is_made(string id)
    {
        var refused = await Assert.ThrowsAsync<PullProtocolException>(() => FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 1 0\nITEM {id} {Blob.Length} {BlobSha}\n",
            _ => Frame(id, Blob.Length, BlobSha, Blob), Options));
        Assert.That(refused!.Message, Does.StartWith("bad ITEM line"));
        AssertPrintable(refused.Message);
        Assert.That(Directory.GetFileSystemEntries(Received), Is.Empty);
    }

    [Test]
    public async Task Error_text_and_a_hash_mismatch_are_reported_printably_and_nothing_is_acknowledged()
    {
        var (result, requests) = await FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 2 0\nITEM {Id1} {Blob.Length} {BlobSha}\nITEM {Id2} {Blob.Length} {BlobSha}\n",
            id => id == Id1 ? Encoding.Latin1.GetBytes($"ERROR damaged \u001b[2J\u009b\u001b]8;;http://x\u0007\n") : Frame(id, Blob.Length, BlobSha, [.. Blob[..^1], (byte)'!']), Options);
        Assert.That(result.Problems, Has.Count.EqualTo(2));
        foreach (var p in result.Problems) AssertPrintable(p);
        Assert.That(requests.Where(r => r.StartsWith("ACK")), Is.Empty);
        AssertNothingButSealedIn();
        Assert.That(Directory.GetFileSystemEntries(Received), Is.Empty);
    }

    [Test]
    public async Task What_the_server_writes_to_stderr_reaches_the_terminal_without_escape_sequences()
    {
        // ssh passes the remote command's stderr on byte for byte; fetch used to hand it straight to the terminal.
        var forged = "printf 'sh: hello\\033]0;owned\\007\\033[2J\\r\\nlong %s\\n' \"$(head -c 3000 /dev/zero | tr '\\0' x)\" >&2; exit 1";
        var fetch = await Oniondrop.RunAsync(["fetch", "-o", Received, "--via", forged]);
        Assert.That(fetch.ExitCode, Is.EqualTo(3), fetch.ToString());
        Assert.That(fetch.Stderr, Does.Contain("sh: hello?]0;owned??[2J\n"), "shown, not obeyed");
        Assert.That(fetch.Stderr.Where(c => char.IsControl(c) && c != '\n'), Is.Empty);
        Assert.That(fetch.Stderr.Split('\n').Max(l => l.Length), Is.LessThanOrEqualTo(1024), "a long line is cut, not held whole");
        Assert.That(fetch.Stderr.Trim().Split('\n')[^1], Does.StartWith("oniondrop fetch: the server ended before the pull began"), "our line comes after its message");
    }

    [TestCase(".sealed")]
    [TestCase(".partial")]
    public async Task A_folder_named_like_a_blob_is_reported_and_the_rest_still_fetched(string suffix)
    {
        // fetch --open names each opened folder from the reference sealed inside; a server that seals one blob
        // with a reference of "ID.sealed" puts a folder in the way of that blob, for every later run.
        Directory.CreateDirectory(Path.Combine(Received, Id1 + suffix));
        var (result, requests) = await FetchFromAsync($"ONIONDROP-PULL 1\nWAITING 2 0\nITEM {Id1} {Blob.Length} {BlobSha}\nITEM {Id2} {Blob.Length} {BlobSha}\n",
            id => Frame(id, Blob.Length, BlobSha, Blob), Options);
        Assert.That(result.Problems.Single(), Does.StartWith($"{Id1}: a folder is in the way").And.EndWith("left on the server"));
        Assert.That(requests.Where(r => r.StartsWith("GET ") || r.StartsWith("ACK ")), Is.EqualTo(new[] { "GET " + Id2, "ACK " + Id2 }));
        Assert.That(File.Exists(Path.Combine(Received, Id2 + ".sealed")));
    }
}
