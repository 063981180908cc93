using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// A unique marker goes into a file's content, its name and the message; after a complete upload, one cut
/// off midway and one over the limit, the marker is nowhere on disk where the daemon could have put it.
/// </summary>
public sealed class PlaintextCanaryTests
{
    [Test]
    public async Task Marker_sent_in_content_filename_and_message_never_reaches_the_disk()
    {
        var started = DateTime.UtcNow.AddSeconds(-2);
        var marker = "CANARY" + Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:MaxSubmissionBytes"] = "3000000");

        byte[] Content(int size)
        {
            // The marker repeated throughout, so a leak of any fragment of the buffer would show.
            var unit = Encoding.ASCII.GetBytes(marker + "\n");
            return Enumerable.Repeat(unit, size / unit.Length + 1).SelectMany(u => u).Take(size).ToArray();
        }
        Multipart Form(int size) => new Multipart("canaryboundary")
            .File($"report-{marker}.txt", Content(size))
            .Field("message", $"the marker is {marker}");

        // 1. Complete.
        using (var client = daemon.SocketClient())
        using (var ok = await client.PostAsync("/", Form(1_000_000).ToContent()))
            Assert.That(ok.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        // 2. Cut off midway.
        var body = Form(2_000_000).Build();
        using (var socket = await RawHttp.ConnectAsync(new UnixDomainSocketEndPoint(daemon.SocketPath)))
        {
            await socket.SendAsync(RawHttp.Ascii($"POST / HTTP/1.1\r\nHost: {TestDaemon.OnionHost}\r\nContent-Type: multipart/form-data; boundary=canaryboundary\r\nContent-Length: {body.Length}\r\n\r\n"));
            await socket.SendAsync(body.AsMemory(0, body.Length / 2));
            await Task.Delay(300);
        }
        await UploadTests.WaitUntil(() => daemon.Counters.Refused == 1);

        // 3. Over the limit (the declared length is honest, so the refusal comes from counting the file's bytes).
        using (var client = daemon.LoopbackClient())
        using (var tooBig = await client.PostAsync("/", Form(3_500_000).ToContent()))
            Assert.That(tooBig.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));

        // The data directory whole: the store dates its files to the day (a blob's mtime is 00:00 UTC), so no
        // time filter there. Elsewhere, what changed during the test.
        var read = new List<string>();
        var found = FilesWithMarker(daemon.DataDir, DateTime.MinValue, marker, read).ToList();
        foreach (var shared in new[] { Path.GetTempPath(), "/tmp", "/var/tmp", "/dev/shm" }.Distinct())
            found.AddRange(FilesWithMarker(shared, started, marker, read));
        Assert.That(found.Distinct(), Is.Empty, "plaintext marker found on disk, in a name or in content");
        // The scan is only worth something if it read the sealed blob itself.
        Assert.That(read.Count(p => p.StartsWith(daemon.DataDir) && p.EndsWith(".sealed")), Is.EqualTo(1), "the committed blob was read");

        // The check is only worth something if the marker really went in: open the one committed submission.
        var opened = daemon.OpenAll().Single();
        Assert.That(opened.Message, Does.Contain(marker));
        Assert.That(opened.Files.Single().OriginalName, Does.Contain(marker));
        Assert.That(File.ReadAllText(Path.Combine(opened.Directory, opened.Files.Single().SafeName)), Does.StartWith(marker));
    }

    /// <summary>
    /// Entries (files, directories, links) written since <paramref name="since"/> whose name holds the marker, and
    /// regular files whose content holds it in UTF-8 or UTF-16; the files whose content was read go to <paramref name="read"/>.
    /// </summary>
    private static IEnumerable<string> FilesWithMarker(string root, DateTime since, string marker, List<string> read)
    {
        if (!Directory.Exists(root)) yield break;
        var patterns = new[] { Encoding.UTF8.GetBytes(marker), Encoding.Unicode.GetBytes(marker) };
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 };
        foreach (var path in Directory.EnumerateFileSystemEntries(root, "*", options))
        {
            FileSystemInfo info;
            try
            {
                info = Directory.Exists(path) ? new DirectoryInfo(path) : new FileInfo(path);
                if (info.LastWriteTimeUtc < since) continue;
            }
            catch (IOException) { continue; }
            if (Path.GetFileName(path).Contains(marker, StringComparison.OrdinalIgnoreCase)) { yield return path; continue; }
            // Empty entries hold no marker, and FIFOs (.NET's clr-debug-pipe-* in /tmp, made by every dotnet
            // process) report size 0 and would block a reader forever.
            if (info is not FileInfo { LinkTarget: null, Length: > 0 }) continue;
            read.Add(path);
            if (Contains(path, patterns)) yield return path;
        }
    }

    private static bool Contains(string path, byte[][] patterns)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 20);
            var overlap = patterns.Max(p => p.Length);
            var buffer = new byte[(1 << 20) + overlap];
            var carried = 0;
            int read;
            while ((read = stream.Read(buffer, carried, buffer.Length - carried)) > 0)
            {
                var window = buffer.AsSpan(0, carried + read);
                foreach (var p in patterns) if (window.IndexOf(p) >= 0) return true;
                carried = Math.Min(overlap, window.Length);
                window[^carried..].CopyTo(buffer);
            }
            return false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; } // sockets, vanished files
    }
}
