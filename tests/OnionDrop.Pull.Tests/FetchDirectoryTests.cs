using System.Security.Cryptography;
using System.Text;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>`oniondrop fetch -o DIR` where DIR cannot take the blobs: said in one line, nothing lost, nothing left running.</summary>
public class FetchDirectoryTests
{
    private const int Nobody = 65534;
    private const string Id = "AAAA-BBBB-CCCC-DDDD-EEEE";
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempDirectory();
        // The tests run as root, whom no mode stops: fetch runs as nobody, who must reach the folders inside.
        File.SetUnixFileMode(_temp.Path, (UnixFileMode)0b111_101_101);
    }

    [TearDown] public void TearDown() => _temp.Dispose();

    private static Task<ProcessResult> FetchAsNobody(params string[] args)
    {
        var psi = ChildProcess.StartInfo("setpriv", [$"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "dotnet", Oniondrop.Dll, "fetch", .. args]);
        psi.Environment["HOME"] = "/nonexistent";
        return ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(1));
    }

    [Test]
    public async Task A_folder_fetch_cannot_write_is_refused_before_connecting()
    {
        var inbox = _temp.Combine("inbox");
        Directory.CreateDirectory(inbox); // root's, 0755
        var ran = _temp.Combine("transport-ran");

        var fetch = await FetchAsNobody("-o", inbox, "--via", $"touch {ran}; exit 1");

        Assert.That(fetch.ExitCode, Is.EqualTo(2), fetch.ToString());
        Assert.That(fetch.Stderr.Trim(), Is.EqualTo($"oniondrop fetch: {inbox}: permission denied: cannot write there"));
        Assert.That(File.Exists(ran), Is.False, "nothing started, nothing transferred");
    }

    [Test]
    public async Task Fetch_into_a_file_or_with_an_idle_timeout_no_timer_can_take_says_so_before_connecting()
    {
        var ran = _temp.Combine("transport-ran");
        File.WriteAllText(_temp.Combine("a-file"), "x");
        var intoFile = await Oniondrop.RunAsync(["fetch", "-o", _temp.Combine("a-file"), "--via", $"touch {ran}; exit 1"]);
        Assert.That(intoFile.ExitCode, Is.EqualTo(2), intoFile.ToString());
        Assert.That(intoFile.Stderr.Trim(), Is.EqualTo($"oniondrop fetch: {_temp.Combine("a-file")}: is a file, not a directory"), "not .NET's 'The file ... already exists'");

        // Task.Delay takes at most 2^32 - 2 ms: a longer --idle-timeout crashed once the server had answered.
        var tooLong = await Oniondrop.RunAsync(["fetch", "-o", _temp.Combine("in"), "--idle-timeout", "4294968", "--via", $"touch {ran}; exit 1"]);
        Assert.That(tooLong.ExitCode, Is.EqualTo(2), tooLong.ToString());
        Assert.That(tooLong.Stderr.Trim(), Is.EqualTo("oniondrop fetch: --idle-timeout must be 0 (no limit) or from 1 to 4294967 seconds, not 4294968"));
        Assert.That(File.Exists(ran), Is.False);
    }

    /// <summary>It was a raw "Access to the path '.../ID.partial' is denied.", exit 1, with the transport left running.</summary>
    [Test]
    public async Task A_folder_that_becomes_unwritable_mid_fetch_is_one_line_and_the_transport_is_ended()
    {
        var inbox = _temp.Combine("inbox");
        Directory.CreateDirectory(inbox);
        File.SetUnixFileMode(inbox, (UnixFileMode)0b111_000_000);
        Assert.That((await ChildProcess.RunAsync("chown", [$"{Nobody}:{Nobody}", inbox])).ExitCode, Is.Zero);
        var pidFile = Path.Combine(inbox, "server.pid"); // where nobody may write (a file fetch leaves alone)
        var blob = "hello"u8.ToArray();
        var sha = Convert.ToHexStringLower(SHA256.HashData(blob));
        // A scripted server (as nobody too): lists one blob, takes the folder's write permission away, then sends it and stays.
        var server = $"echo $$ > {pidFile}; echo '{PullProtocol.Greeting}'; read list; printf 'WAITING 1 5\\nITEM {Id} 5 {sha}\\n'; " +
                     $"read get; chmod 500 {inbox}; printf 'BLOB {Id} 5 {sha}\\nhello'; exec sleep 600";

        var fetch = await FetchAsNobody("-o", inbox, "--via", server);

        Assert.That(fetch.ExitCode, Is.EqualTo(3), fetch.ToString());
        Assert.That(fetch.Stderr.Trim(), Is.EqualTo($"oniondrop fetch: permission denied writing into {inbox} after 0 of 1 submission(s); " +
                                                     "nothing unacknowledged was deleted: run fetch again once you can write there"));
        Assert.That(PosixProcess.IsAlive(int.Parse(File.ReadAllText(pidFile))), Is.False, "the transport was ended with fetch");
    }
}
