using System.Text.RegularExpressions;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// `oniondrop fetch -o DIR` with DIR on a USB stick, as the README's air-gapped workflow has it: a real exFAT file
/// system (<see cref="ExFatStick"/>: no Unix modes, no links, case-insensitive, small), served by the real
/// `oniondrop pull --stdio`. Whatever runs out, nothing is acknowledged that is not safely on the stick, no partial
/// file is left looking complete, and a rerun once there is room finishes the job.
/// </summary>
public class UsbStickFetchTests
{
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");
    private string KeyFile => _temp.Combine("me.key");
    private string Pull => $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as alice";

    [SetUp]
    public void SetUp()
    {
        (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
        _key.Save(KeyFile);
    }

    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    private async Task<Dictionary<string, string>> SubmitAsync(params int[] sizes)
    {
        using var store = SealedBlobStore.Open(DataDir);
        var numbers = await Submissions.CreateAsync(store, _key.PublicKey, sizes.Length, n => sizes[n]);
        return store.ListWaiting("alice").ToDictionary(r => r.Id, r => r.Sha256Hex);
    }

    private IReadOnlyList<string> StillOnServer()
    {
        using var store = SealedBlobStore.Open(DataDir);
        return store.ListWaiting("alice").Select(r => r.Id).ToList();
    }

    private Task<ProcessResult> Fetch(string dir, params string[] more) => Oniondrop.RunAsync(["fetch", "-o", dir, .. more, "--via", Pull]);

    /// <summary>Once the filler is gone, a rerun with the whole stick brings every blob sent, and the server lets them all go.</summary>
    private async Task RoomMadeTheRerunFetchesEverything(string filler, string inbox, Dictionary<string, string> sent)
    {
        File.Delete(filler);
        var rerun = await Fetch(inbox, "--keep-free", "0");
        Assert.That(rerun.ExitCode, Is.Zero, rerun.ToString());
        Assert.That(SealedFiles.HashesIn(inbox), Is.EquivalentTo(sent));
        Assert.That(StillOnServer(), Is.Empty);
    }

    /// <summary>
    /// Everything fetch does in DIR works there: the folder's flock, files created 0600 (shown 0777), fsync of file
    /// and folder, the rename into place, and with --open the opened folders beside, under one warning that the
    /// stick keeps no modes. --keep-free 0 uses the whole stick (the default keeps 1 GiB free, more than it has).
    /// </summary>
    [Test]
    public async Task Fetch_and_open_onto_a_stick_keeps_every_blob_and_the_server_lets_them_go()
    {
        await using var stick = await ExFatStick.MountAsync(32);
        var sent = await SubmitAsync(300_000, 200_000, 100_000);
        var inbox = stick.Combine("inbox");

        var fetch = await Fetch(inbox, "--keep-free", "0", "--open", "--key", KeyFile);

        Assert.That(fetch.ExitCode, Is.Zero, fetch.ToString());
        var lines = fetch.Stderr.Trim().Split('\n');
        Assert.That(lines[0], Is.EqualTo($"oniondrop fetch: warning: {inbox} keeps no Unix permissions (as on FAT or exFAT, a USB stick's usual format): " +
                                         "what is opened there can be read by every account on this machine, and by anyone who gets the disk"));
        Assert.That(lines[1], Does.StartWith("oniondrop fetch: 3 new submission(s)").And.EndWith("; 3 opened"));
        Assert.That(SealedFiles.HashesIn(inbox), Is.EquivalentTo(sent));
        Assert.That(Directory.GetDirectories(inbox).Select(Path.GetFileName), Is.EquivalentTo(sent.Keys));
        Assert.That(Directory.GetFiles(inbox, "*.partial"), Is.Empty);
        Assert.That(StillOnServer(), Is.Empty, "acknowledged once on the stick");
    }

    /// <summary>
    /// A stick without room for what waits: the blobs that do not fit are left on the server, said in one line
    /// naming the folder, what it has free and what fetch keeps free (it was a line per blob, sizes in bytes); once
    /// there is room the rerun fetches them.
    /// </summary>
    [Test]
    public async Task A_stick_without_room_leaves_the_rest_on_the_server_in_one_line_and_a_rerun_with_room_fetches_it()
    {
        await using var stick = await ExFatStick.MountAsync(16);
        var sent = await SubmitAsync(1 << 20, 1 << 20, 1 << 20);
        var inbox = stick.Combine("inbox");
        Directory.CreateDirectory(inbox);
        var filler = stick.Fill(leave: 3 << 19);   // room for one blob, not two

        var full = await Fetch(inbox, "--keep-free", "0");

        Assert.That(full.ExitCode, Is.EqualTo(1), full.ToString());
        var lines = full.Stderr.Trim().Split('\n');
        Assert.That(lines, Has.Length.EqualTo(2), full.ToString());
        Assert.That(lines[0], Does.Match($@"^oniondrop fetch: 2 submission\(s\) \(2\.0 MiB\) left on the server: not enough room in {Regex.Escape(inbox)} " +
                                         @"\([0-9.]+ KiB free, and fetch keeps 0 B free: --keep-free\); make room there or fetch into another folder, then run fetch again$"));
        Assert.That(lines[1], Does.StartWith("oniondrop fetch: 1 new submission(s)"));
        Assert.That(StillOnServer(), Has.Count.EqualTo(2));
        Assert.That(SealedFiles.HashesIn(inbox).Keys, Is.EquivalentTo(sent.Keys.Except(StillOnServer())), "the one fetched is the one acknowledged");

        var keeping = await Fetch(inbox);
        Assert.That(keeping.ExitCode, Is.EqualTo(1), keeping.ToString());
        Assert.That(keeping.Stderr, Does.Contain("and fetch keeps 1.0 GiB free: --keep-free"), "the default reserve, said as such");

        await RoomMadeTheRerunFetchesEverything(filler, inbox, sent);
    }

    /// <summary>
    /// fetch --open onto a stick with room for the sealed file but not for what it holds opened (--keep-free counts
    /// blobs only): the sealed file is kept and acknowledged (it is safe), the opening is refused in one line naming the
    /// folder, with nothing of it left, and `open` does it once there is room.
    /// </summary>
    [Test]
    public async Task Fetch_open_onto_a_stick_too_full_to_open_keeps_the_sealed_file_and_open_does_it_later()
    {
        await using var stick = await ExFatStick.MountAsync(16);
        var sent = await SubmitAsync(2 << 20);
        var id = sent.Keys.Single();
        var inbox = stick.Combine("inbox");
        Directory.CreateDirectory(inbox);
        var filler = stick.Fill(leave: 3 << 20);   // the blob (2 MiB) fits, the blob and its opened file do not

        var fetch = await Fetch(inbox, "--keep-free", "0", "--open", "--key", KeyFile);

        Assert.That(fetch.ExitCode, Is.EqualTo(1), fetch.ToString());
        var lines = fetch.Stderr.Trim().Split('\n');
        Assert.That(lines[1], Does.Match($@"^oniondrop fetch: {id}\.sealed: not opened: no space left in {Regex.Escape(inbox)} \([0-9.]+ [KM]iB free; " +
                                         @"this submission needs about 2\.0 MiB\): nothing of it was kept; make room there or open it into another folder, then run open again$"));
        Assert.That(SealedFiles.HashesIn(inbox), Is.EquivalentTo(sent), "the sealed file is whole");
        Assert.That(StillOnServer(), Is.Empty, "and, being safe, acknowledged");
        Assert.That(Directory.GetDirectories(inbox), Is.Empty, "nothing opened, no working folder left");

        File.Delete(filler);
        var open = await Oniondrop.RunAsync(["open", "--key", KeyFile, "-o", inbox, Path.Combine(inbox, id + ".sealed")]);
        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        Assert.That(Directory.GetDirectories(inbox).Select(Path.GetFileName), Is.EqualTo(new[] { id }));
    }

    [Test]
    public async Task A_keep_free_that_is_no_size_is_refused_before_connecting()
    {
        var ran = _temp.Combine("transport-ran");
        var bad = await Oniondrop.RunAsync(["fetch", "-o", _temp.Combine("in"), "--keep-free", "lots", "--via", $"touch {ran}; exit 1"]);
        Assert.That(bad.ExitCode, Is.EqualTo(2), bad.ToString());
        Assert.That(bad.Stderr.Trim(), Is.EqualTo("oniondrop fetch: --keep-free takes a size such as 0, 500M or 2G (K, M, G, T: KiB, MiB, GiB, TiB), not lots"));
        Assert.That(File.Exists(ran), Is.False);
    }

    /// <summary>
    /// The disk fills up after fetch asked for a blob (another program writing there): fetch stops with one line
    /// that says DIR is full and to make room (it said "cannot write into DIR (No space left on device :
    /// 'DIR/ID.partial'); ... run fetch again", which then failed the same way), leaves no .partial, acknowledges
    /// nothing, and the rerun with room resumes. The filler is written by a relay on the way to the server, once it
    /// has seen the GET. On exFAT through FUSE the write fails; on tmpfs already the space .NET reserves for the file
    /// (fallocate), which .NET reports in words of its own ("... because the disk was full").
    /// </summary>
    [TestCase("exfat")]
    [TestCase("tmpfs")]
    public async Task A_disk_that_fills_up_mid_fetch_stops_it_in_one_line_and_a_rerun_with_room_resumes(string kind)
    {
        await using var stick = kind == "exfat" ? await ExFatStick.MountAsync(16) : null;
        await using var tmpfs = kind == "tmpfs" ? await SmallTmpfs.MountAsync(16) : null;
        var disk = stick?.Path ?? tmpfs!.Path;
        var sent = await SubmitAsync(4 << 20);
        var inbox = Path.Combine(disk, "inbox");
        var filler = Path.Combine(disk, "filler");
        var fillAfterGet = $"{{ IFS= read -r list; echo \"$list\"; IFS= read -r get; head -c 64M /dev/zero > {filler} 2>/dev/null; echo \"$get\"; exec cat; }} | {Pull}";

        var full = await Oniondrop.RunAsync(["fetch", "-o", inbox, "--keep-free", "0", "--via", fillAfterGet]);

        Assert.That(full.ExitCode, Is.EqualTo(3), full.ToString());
        Assert.That(full.Stderr.Trim(), Is.EqualTo($"oniondrop fetch: {inbox} is full (no space left on the disk) after 0 of 1 submission(s); " +
                                                   "nothing unacknowledged was deleted: make room there or fetch into another folder, then run fetch again to resume"));
        Assert.That(Directory.GetFileSystemEntries(inbox), Is.Empty, "no .partial, nothing shown as complete");
        Assert.That(StillOnServer(), Is.EquivalentTo(sent.Keys));

        await RoomMadeTheRerunFetchesEverything(filler, inbox, sent);
    }

    /// <summary>
    /// A blob larger than a file there can be (EFBIG: FAT32 takes 4 GiB less a byte; here a file size limit, as no
    /// FAT32 mounts here) is left on the server in one line, and the blobs after it still come. It ended the run
    /// ("Specified file length was too large for the file system. (Parameter 'value')", .NET's EFBIG), and every
    /// rerun again at the same blob, so no later blob ever reached that folder.
    /// </summary>
    [Test]
    public async Task A_blob_larger_than_the_file_system_takes_is_left_on_the_server_and_the_others_still_come()
    {
        var sent = await SubmitAsync(200_000, 3 << 20, 200_000, 300_000);
        var big = sent.Keys.Single(id => new FileInfo(Path.Combine(DataDir, SealedBlobStore.BlobsDirectoryName, id + ".sealed")).Length > 3 << 20);
        var inbox = _temp.Combine("inbox");

        var psi = FileSizeLimited.StartInfo(1 << 20, "fetch", "-o", inbox, "--via", FileSizeLimited.Unlimited(Pull));
        var limited = await ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(2));

        Assert.That(limited.ExitCode, Is.EqualTo(1), limited.ToString());
        var lines = limited.Stderr.Trim().Split('\n');
        Assert.That(lines[0], Is.EqualTo($"oniondrop fetch: {big}: 3.0 MiB is more than a file in {inbox} can be (File too large); left on the server: " +
                                         "fetch it into a folder on another file system (FAT32, as many USB sticks are, takes at most 4 GiB - 1 byte a file)"));
        Assert.That(lines[1], Does.StartWith("oniondrop fetch: 3 new submission(s)"));
        Assert.That(SealedFiles.HashesIn(inbox), Is.EquivalentTo(sent.Where(s => s.Key != big)));
        Assert.That(Directory.GetFiles(inbox, "*.partial"), Is.Empty);
        Assert.That(StillOnServer(), Is.EqualTo(new[] { big }));

        var elsewhere = await Fetch(inbox);
        Assert.That(elsewhere.ExitCode, Is.Zero, elsewhere.ToString());
        Assert.That(SealedFiles.HashesIn(inbox), Is.EquivalentTo(sent));
    }
}
